"""Where dead letters go, and what they carry."""

from __future__ import annotations

from collections.abc import Callable

from dispytch.backends.base import DLQ_HEADER_PREFIX, DeadLetterReason
from dispytch.kafka._client import CONNECTION_OPTIONS
from dispytch.kafka._publisher import RecordPublisher
from dispytch.kafka.config import header_bytes

DEFAULT_DEAD_LETTER_SUFFIX = ".dlq"

__all__ = ["CONNECTION_OPTIONS", "DEFAULT_DEAD_LETTER_SUFFIX", "DeadLetterPublisher"]


class DeadLetterPublisher:
    """Stores a record with the reason's headers in the dead-letter topic of its topic."""

    def __init__(self, topic_for: Callable[[str], str], publisher: RecordPublisher) -> None:
        self.topic_for = topic_for
        self._publisher = publisher

    async def publish(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: tuple[tuple[str, bytes | None], ...],
        reason: DeadLetterReason,
    ) -> None:
        """Store the record in the dead-letter topic of `topic`; return on the broker's ack."""
        kept: list[tuple[str, bytes]] = [
            (name, b"" if item is None else item)
            for name, item in headers
            if not name.startswith(DLQ_HEADER_PREFIX)
        ]
        kept.extend((name, header_bytes(text)) for name, text in reason.to_headers().items())
        await self._publisher.publish(self.topic_for(topic), value, key, kept)


def dead_letter_topic_namer(
    topic: Callable[[str], str] | None, suffix: str
) -> Callable[[str], str]:
    if topic is not None:
        return topic
    return lambda original: original + suffix
