"""What an owned consumer subscribes to: a list of topics, or one regular expression."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dispytch.backends.base import Subscription


@dataclass(frozen=True, slots=True)
class SubscriptionPlan:
    topics: tuple[str, ...] = ()
    pattern: str | None = None


def plan_subscription(
    subscriptions: Sequence[Subscription],
    topics: Sequence[str] | None,
    pattern: str | None,
    exclude_suffix: str | None,
) -> SubscriptionPlan:
    """Explicit `topics` / `pattern` win; otherwise the listener's subscriptions decide.

    Literal subscriptions become topics. When any subscription has a wildcard, everything is
    combined into one regular expression (Kafka takes topics or a pattern, not both); the
    wildcard part never matches dead-letter topics (names ending in `exclude_suffix`), so
    `orders:{region}` does not read its own `orders:eu.dlq`.
    """
    if topics or pattern:
        return SubscriptionPlan(tuple(topics or ()), pattern)
    literal = sorted({s.pattern for s in subscriptions if s.is_literal})
    wildcard = sorted({s.regex().pattern for s in subscriptions if not s.is_literal})
    if not wildcard:
        return SubscriptionPlan(tuple(literal))
    guard = f"(?!.*{re.escape(exclude_suffix)}\\Z)" if exclude_suffix else ""
    parts = [f"{guard}(?:{'|'.join(wildcard)})\\Z"]
    if literal:
        parts.insert(0, f"(?:{'|'.join(re.escape(t) for t in literal)})\\Z")
    return SubscriptionPlan(pattern="|".join(parts))
