"""`DeadLetter`: one dead-lettered message as read back from a backend's dead-letter store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispytch.envelope import read_envelope
from dispytch.reasons import ATTEMPT_HEADER, DLQ_HEADER_PREFIX, DeadLetterReason
from dispytch.serialization.base import CONTENT_TYPE_HEADER


@dataclass(frozen=True, slots=True)
class Envelope:
    """The decoded event envelope of a dead letter."""

    id: str
    type: str
    body: Any
    timestamp: int | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter: the original bytes and headers, the reason, and the decoded envelope.

    `index` is the letter's position in the read that produced it (0-based, stable as long as
    the store does not change). `location` names where the backend keeps it
    (`orders.dlq[0]@12` on Kafka: topic, partition, offset; `dispytch.dlq#3` on RabbitMQ).
    """

    index: int
    location: str
    value: bytes
    key: bytes | None
    #: the message's headers as stored, including the `dispytch-dlq-*` reason headers
    headers: Mapping[str, str]
    reason: DeadLetterReason | None
    #: the decoded envelope, or None when the bytes are not one (see `envelope_error`)
    envelope: Envelope | None
    envelope_error: str | None = None
    timestamp_ms: int | None = None
    #: backend details (Kafka partition and offset, RabbitMQ routing key and group, ...)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: Kafka only: already replayed (shown only when reading with include_replayed=True)
    replayed: bool = False
    #: the backend's handle on the message, used by `DeadLetterStore.replay`
    handle: Any = field(default=None, repr=False, compare=False)

    @property
    def event_id(self) -> str | None:
        if self.envelope is not None:
            return self.envelope.id
        return self.reason.event_id if self.reason else None

    @property
    def event_type(self) -> str | None:
        if self.envelope is not None:
            return self.envelope.type
        return self.reason.event_type if self.reason else None

    @property
    def group(self) -> str | None:
        """The consumer group that dead-lettered it, when the backend records one (RabbitMQ:
        the group of `RabbitMQConsumer.create(url, group)`)."""
        group = self.metadata.get("group_name") or self.metadata.get("group")
        return group if isinstance(group, str) and group else None

    @property
    def original_topic(self) -> str | None:
        return self.reason.original_topic if self.reason and self.reason.original_topic else None

    def replay_headers(self) -> dict[str, str]:
        """The headers a replay sends: the stored ones without the reason and attempt count."""
        return replay_headers(self.headers)


def replay_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in headers.items()
        if not name.startswith(DLQ_HEADER_PREFIX) and name != ATTEMPT_HEADER
    }


def decode_envelope(value: bytes, headers: Mapping[str, str]) -> tuple[Envelope | None, str | None]:
    """The envelope in `value` (by its content-type header), or None and why not. Never
    raises: whatever a producer wrote is shown with its decode error."""
    content_type = headers.get(CONTENT_TYPE_HEADER) or "application/json"
    try:
        if content_type == "application/json":
            from dispytch.serialization.json import JSONDeserializer

            payload = JSONDeserializer().deserialize(value)
        elif content_type == "application/msgpack":
            from dispytch.serialization.msgpack import MessagePackDeserializer

            payload = MessagePackDeserializer().deserialize(value)
        else:
            return None, f"unknown content type {content_type!r}"
        event_id, event_type, body, timestamp = read_envelope(payload)
        return Envelope(event_id, event_type, body, timestamp), None
    except Exception as error:  # any bytes a producer wrote: a letter to show, not a crash
        return None, f"{type(error).__name__}: {error}"
