"""What a consumer subscribes to: a list of topics, or one regular expression."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dispytch.backends.base import Subscription


@dataclass(frozen=True, slots=True)
class SubscriptionPlan:
    topics: tuple[str, ...] = ()
    pattern: str | None = None

    def with_topic(self, topic: str | None) -> SubscriptionPlan:
        """The plan plus one literal topic (the group's retry topic)."""
        if topic is None:
            return self
        if self.pattern is not None:
            return SubscriptionPlan(pattern=f"{re.escape(topic)}\\Z|{self.pattern}")
        if topic in self.topics:
            return self
        return SubscriptionPlan(topics=(*self.topics, topic))

    def accepts(self) -> Callable[[str], bool]:
        """Whether a topic belongs to the plan (as aiokafka matches patterns: from the start)."""
        if self.pattern is not None:
            compiled = re.compile(self.pattern)
            return lambda topic: compiled.match(topic) is not None
        topics = frozenset(self.topics)
        return topics.__contains__


def plan_subscription(
    subscriptions: Sequence[Subscription],
    topics: Sequence[str] | None,
    pattern: str | None,
    exclude_suffix: str | Sequence[str] | None,
) -> SubscriptionPlan:
    """Explicit `topics` / `pattern` win; otherwise the listener's subscriptions decide.

    Literal subscriptions become topics. When any subscription has a wildcard, everything is
    combined into one regular expression (Kafka takes topics or a pattern, not both); the
    wildcard part never matches names ending in an `exclude_suffix` (dead-letter and retry
    topics), so `orders:{region}` reads neither its own `orders:eu.dlq` nor another group's
    `orders:billing.retry`.
    """
    if topics or pattern:
        return SubscriptionPlan(tuple(topics or ()), pattern)
    literal = sorted({s.pattern for s in subscriptions if s.is_literal})
    wildcard = sorted({s.regex().pattern for s in subscriptions if not s.is_literal})
    if not wildcard:
        return SubscriptionPlan(tuple(literal))
    suffixes = [exclude_suffix] if isinstance(exclude_suffix, str) else list(exclude_suffix or ())
    guard = "".join(f"(?!.*{re.escape(suffix)}\\Z)" for suffix in suffixes if suffix)
    parts = [f"{guard}(?:{'|'.join(wildcard)})\\Z"]
    if literal:
        parts.insert(0, f"(?:{'|'.join(re.escape(t) for t in literal)})\\Z")
    return SubscriptionPlan(pattern="|".join(parts))


#: how often (ms) a consumer that subscribes by pattern asks for the cluster's topics, unless
#: `metadata_max_age_ms` is given: a new matching topic is read within about this long, for one
#: metadata request per interval (aiokafka's default, 5 minutes, left new topics unread that long)
PATTERN_METADATA_MAX_AGE_MS = 3000


def with_pattern_refresh(
    options: dict[str, Any],
    given: bool,
    topics: Sequence[str] | None,
    pattern: str | None,
    subscriptions: Sequence[Subscription],
) -> dict[str, Any]:
    """`options` with `metadata_max_age_ms` lowered when the consumer will subscribe by pattern
    and the user did not set it (`given`)."""
    by_pattern = pattern is not None or (
        not topics and any(not subscription.is_literal for subscription in subscriptions)
    )
    if given or not by_pattern:
        return options
    return {**options, "metadata_max_age_ms": PATTERN_METADATA_MAX_AGE_MS}
