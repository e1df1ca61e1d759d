"""Where dead letters go, and the headers they are stored with."""

from __future__ import annotations

from collections.abc import Callable, Mapping

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
