"""The codecs a listener needs to read schema formats: `listener_codecs(registry)`."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dispytch.envelope import Envelope
from dispytch.schemas.avro_schema import AVRO_CONTENT_TYPE
from dispytch.schemas.decoding import SchemaDecoder, SchemaRegistryCodec
from dispytch.schemas.json_schema import JSON_SCHEMA_CONTENT_TYPE
from dispytch.schemas.protobuf import PROTOBUF_CONTENT_TYPE
from dispytch.schemas.wire import is_framed
from dispytch.serialization.codec import Codec, Encoded, JSONCodec

if TYPE_CHECKING:
    from dispytch.events import EventBase
    from dispytch.schemas.registry import SchemaRegistry


class FramedOrJSONCodec:
    """For messages without a `content-type` header: the Confluent wire format when the first
    byte is 0 (what other producers' serializers write; a JSON text never starts so), else
    the JSON envelope, as without this codec. Its content type is JSON's: given to a
    listener, it replaces the built-in JSON codec, also as the default for messages without
    the header."""

    content_type = JSONCodec.content_type

    def __init__(self, decoder: SchemaDecoder) -> None:
        self.decoder = decoder
        self.json = JSONCodec()

    def encode(self, envelope: Mapping[str, Any], event: EventBase) -> Encoded:
        return self.json.encode(envelope, event)

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope | Awaitable[Envelope]:
        if is_framed(value):
            return self.decoder.decode(value, headers)
        return self.json.decode(value, headers)


def listener_codecs(
    registry: SchemaRegistry,
    *,
    event_types: Mapping[str, str] | None = None,
    readers: Iterable[type[BaseModel]] = (),
    messages: Iterable[type[Any]] = (),
    give_up_after: float | None = None,
) -> list[Codec]:
    """The codecs for `EventListener(consumer, codecs=...)`: Avro, JSON Schema and Protobuf by
    their content types, and messages without the header (other producers) by their first byte.
    Arguments: see `SchemaDecoder`."""
    decoder = SchemaDecoder(
        registry,
        event_types=event_types,
        readers=readers,
        messages=messages,
        give_up_after=give_up_after,
    )
    return [
        SchemaRegistryCodec(decoder, AVRO_CONTENT_TYPE),
        SchemaRegistryCodec(decoder, JSON_SCHEMA_CONTENT_TYPE),
        SchemaRegistryCodec(decoder, PROTOBUF_CONTENT_TYPE),
        FramedOrJSONCodec(decoder),
    ]
