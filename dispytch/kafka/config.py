"""`KafkaEventConfig`: per-event Kafka options, set as an event's `__backend_config__`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KafkaEventConfig(BaseModel):
    """How an event is stored on Kafka. The emitter hands it to `KafkaProducer` as
    `OutgoingMessage.config`.

    - `partition_key`: the record key (str is encoded as UTF-8); records with one key land on
      one partition and are handled in order. Takes precedence over the emitter's key.
    - `partition`: an explicit partition (the key then only travels along).
    - `timestamp_ms`: the record timestamp, epoch milliseconds (default: the event's).
    - `headers`: extra record headers; values may be given as str, bytes or numbers.
    """

    model_config = ConfigDict(extra="forbid")

    partition_key: str | bytes | None = None
    partition: int | None = Field(default=None, ge=0)
    timestamp_ms: int | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("partition_key", mode="before")
    @classmethod
    def _key_from_number(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _headers_as_text(cls, value: Any) -> Any:
        if value is None:
            return {}
        items = value.items() if isinstance(value, Mapping) else value
        return {str(name): header_text(item) for name, item in items}

    def key_bytes(self) -> bytes | None:
        key = self.partition_key
        return key.encode() if isinstance(key, str) else key


def header_text(value: Any) -> str:
    """A header value as text; bytes that are not UTF-8 survive the round trip to bytes."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


def header_bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")
