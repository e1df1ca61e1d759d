"""Codecs: an event to bytes plus headers, and bytes plus headers back to an envelope.

Either direction may return an awaitable instead of the result (a codec that fetches a schema
by id): the core awaits only then, so a codec whose steady state is served from its cache
costs no await. `decode` returns the checked envelope (`read_envelope` checks a decoded
mapping); `encode` returns `(value, headers)`, the headers added to the message's own.

A codec may set `body_as_json = False` (a schema format, which writes the event's own values):
its `encode` then gets the envelope with `body` None, and reads the values from the event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic_core import from_json, to_json

from dispytch.envelope import Envelope, read_envelope
from dispytch.serialization.base import Deserializer, Serializer

if TYPE_CHECKING:
    from dispytch.events import EventBase

#: (value, headers to add to the message)
Encoded = tuple[bytes, Mapping[str, str]]
NO_HEADERS: Mapping[str, str] = {}
JSON_CONTENT_TYPE = "application/json"


@runtime_checkable
class Codec(Protocol):
    """A wire format. `content_type` goes into the `content-type` header of what it encodes,
    and the listener picks the codec that decodes a message by that header."""

    content_type: str

    def encode(
        self, envelope: Mapping[str, Any], event: EventBase
    ) -> Encoded | Awaitable[Encoded]: ...

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope | Awaitable[Envelope]:
        """Raise (any Exception) for bytes that are not an event: the message is then
        dead-lettered at the "decode" stage."""
        ...


class JSONCodec:
    """The 0.10 envelope as JSON: the default."""

    content_type = JSON_CONTENT_TYPE

    def encode(self, envelope: Mapping[str, Any], event: EventBase) -> Encoded:
        return to_json(envelope), NO_HEADERS

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope:
        return read_envelope(from_json(value))


class SerializerCodec:
    """A 0.10-style `Serializer` (and optionally its `Deserializer`) as a codec."""

    def __init__(self, serializer: Serializer | None, deserializer: Deserializer | None) -> None:
        self.serializer = serializer
        self.deserializer = deserializer
        self.content_type = getattr(serializer, "content_type", "application/json")

    def encode(self, envelope: Mapping[str, Any], event: EventBase) -> Encoded:
        if self.serializer is None:
            raise TypeError("this codec only decodes")
        return self.serializer.serialize(envelope), NO_HEADERS

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope:
        if self.deserializer is None:
            raise TypeError("this codec only encodes")
        return read_envelope(self.deserializer.deserialize(value))


def default_codecs() -> list[Codec]:
    """JSON, and MessagePack when its extra is installed."""
    codecs: list[Codec] = [JSONCodec()]
    try:
        from dispytch.serialization.msgpack import MessagePackCodec
    except ImportError:
        return codecs
    codecs.append(MessagePackCodec())
    return codecs


def media_type(content_type: str) -> str:
    """The media type alone: `application/json` for `Application/JSON; charset=utf-8`."""
    return content_type.split(";", 1)[0].strip().lower()
