"""Where dead letters go, and the headers they are stored with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from dispytch.backends.base import Subscription
from dispytch.kafka._client import CONNECTION_OPTIONS
from dispytch.kafka._publisher import RecordPublisher
from dispytch.kafka.config import header_bytes

DEFAULT_DEAD_LETTER_SUFFIX = ".dlq"

__all__ = ["CONNECTION_OPTIONS", "DEFAULT_DEAD_LETTER_SUFFIX", "DeadLetterPublisher"]

RawHeaders = tuple[tuple[str, bytes | None], ...]


class DeadLetterPublisher:
    """Stores a record in the dead-letter topic of its topic."""

    def __init__(self, topic_for: Callable[[str], str], publisher: RecordPublisher) -> None:
        self.topic_for = topic_for
        self._publisher = publisher

    async def publish(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Store the record in the dead-letter topic of `topic`; return on the broker's ack."""
        await self._publisher.publish(self.topic_for(topic), value, key, headers)


def stored_headers(
    wanted: Mapping[str, str], decoded: Mapping[str, str], raw: RawHeaders
) -> list[tuple[str, bytes]]:
    """`wanted` (the headers the core gave) as Kafka headers. A header the core passed on
    unchanged keeps the bytes it was stored with, repeats included: the record's header may not
    be UTF-8 (`decoded` holds it with replacement characters)."""
    unchanged = {name for name, text in wanted.items() if decoded.get(name) == text}
    headers = [
        (name, b"" if value is None else value) for name, value in raw if name in unchanged
    ]
    headers.extend(
        (name, header_bytes(text)) for name, text in wanted.items() if name not in unchanged
    )
    return headers


def dead_letter_topic_namer(
    topic: Callable[[str], str] | None, suffix: str
) -> Callable[[str], str]:
    if topic is not None:
        return topic
    return lambda original: original + suffix


def pattern_stem(subscription: Subscription) -> str | None:
    """The literal segments of a wildcard subscription before its first wildcard
    (`orders.{customer_id}` -> `orders`), or None when it starts with one."""
    literal: list[str] = []
    for segment in subscription.segments:
        if segment is None:
            break
        literal.append(segment)
    return subscription.delimiter.join(literal) or None


def per_pattern_namer(subscriptions: Sequence[Subscription], suffix: str) -> Callable[[str], str]:
    """Dead-letter topics named after the handler pattern that matched, not the topic: every
    `orders.<id>` of `orders.{customer_id}` dead-letters into `orders.dlq`. A topic that
    matches no wildcard subscription with a stem keeps its own (`<topic>.dlq`)."""
    stems = [
        (subscription, stem)
        for subscription in subscriptions
        if not subscription.is_literal and (stem := pattern_stem(subscription)) is not None
    ]

    def topic_for(original: str) -> str:
        for subscription, stem in stems:
            if subscription.matches(original):
                return stem + suffix
        return original + suffix

    return topic_for


#: how many existing dead-letter topics a "no such topic" error names
_LISTED = 20


def missing_topic_message(topic: str, existing: Iterable[str]) -> str:
    """"No such topic", with the dead-letter topics that do exist (those of the same start
    first)."""
    stem = topic.removesuffix(DEFAULT_DEAD_LETTER_SUFFIX).split(".")[0]
    found = sorted(
        (name for name in existing if name.endswith(DEFAULT_DEAD_LETTER_SUFFIX)),
        key=lambda name: (not name.startswith(stem), name),
    )
    if not found:
        return f"Kafka has no topic {topic!r}, and no dead-letter topic at all"
    listed = ", ".join(found[:_LISTED])
    more = f" and {len(found) - _LISTED} more" if len(found) > _LISTED else ""
    return f"Kafka has no topic {topic!r}; the dead-letter topics are: {listed}{more}"


def source_stem(source_topic: str) -> str:
    """The topic whose dead-letter topic `--source-topic` names: the topic itself, or for a
    handler pattern (`orders.{customer_id}`, `orders.*`) its literal start (`orders`), where a
    wildcard handler's dead letters go."""
    cut = min((i for i in (source_topic.find("{"), source_topic.find("*")) if i >= 0), default=-1)
    if cut < 0:
        return source_topic
    return source_topic[:cut].rstrip(".-_:") or source_topic
