"""Receiving side: any message in the Confluent wire format back to an envelope.

The writer's schema is fetched by the id in the message, once, then served from the cache
without an await. While the registry is unreachable, or does not know the id (yet), the
message waits and the fetch is tried again with backoff: it is not dead-lettered. Bytes that
can never decode (no framing, a payload that does not match its schema, a schema that does
not parse) raise `UndecodableRecordError`: the listener dead-letters them with the reason.

The event type is the `dispytch-event-type` header; without it (a foreign producer), the
user's mapping of the record's full name, else the record's full name itself.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import from_json

from dispytch.envelope import Envelope
from dispytch.schemas.avro_schema import AVRO_CONTENT_TYPE, parse_avro
from dispytch.schemas.avro_types import model_schema
from dispytch.schemas.errors import (
    SchemaDefinitionError,
    SchemaRegistryUnavailableError,
    UndecodableRecordError,
    UnknownSchemaIdError,
)
from dispytch.schemas.headers import EVENT_ID_HEADER, EVENT_TYPE_HEADER, timestamp_of
from dispytch.schemas.registry import RegisteredSchema, SchemaRegistry
from dispytch.schemas.schema_of import SchemaOf
from dispytch.schemas.wire import HEADER_SIZE, MAGIC, schema_id_of

logger = logging.getLogger("dispytch.schemas")

#: payload -> (record full name, body)
Reader = Callable[[bytes], "tuple[str, Any]"]


class SchemaDecoder:
    """Decodes framed messages of every schema id it meets (Avro; see docs/schemas.md).

    - `event_types`: record full name -> event type, for messages without Dispytch's headers.
    - `readers`: models (or `EventBase` classes with `__codec__ = Avro(...)`) whose Avro schema
      is the reader's schema for writer records of the same full name (Avro schema
      resolution: defaults filled in, fields the reader lacks dropped, promotions).
    - `messages`: Protobuf message classes (generated), or event classes with
      `__codec__ = Protobuf(...)`, to read Protobuf records with (by the message's full name).
    - `retry_initial`, `retry_max`: the backoff between fetches of an unknown id, in seconds;
      `give_up_after`: seconds after which such a message is dead-lettered (None: never).
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        event_types: Mapping[str, str] | None = None,
        readers: Iterable[type[BaseModel]] = (),
        messages: Iterable[type[Any]] = (),
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
        give_up_after: float | None = None,
    ) -> None:
        self.registry = registry
        self.event_types = dict(event_types or {})
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.give_up_after = give_up_after
        self._reader_schemas = {s.full_name: s for s in map(_reader_schema, readers)}
        self._readers: dict[int, Reader] = {}
        self._messages = dict(map(_message_entry, messages))
        #: ids whose schema can never be read, with the reason
        self._broken: dict[int, str] = {}

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope | Awaitable[Envelope]:
        reader = self._readers.get(int.from_bytes(value[1:HEADER_SIZE], "big"))
        if reader is None or len(value) < HEADER_SIZE or value[0] != MAGIC:
            return self._decode_later(value, headers, schema_id_of(value))
        full_name, body = reader(value[HEADER_SIZE:])
        return (
            headers.get(EVENT_ID_HEADER) or str(uuid.uuid4()),
            headers.get(EVENT_TYPE_HEADER) or self.event_types.get(full_name, full_name),
            body,
            timestamp_of(headers),
        )

    async def _decode_later(
        self, value: bytes, headers: Mapping[str, str], schema_id: int
    ) -> Envelope:
        return self._envelope(await self._reader(schema_id), value, headers)

    def _envelope(self, reader: Reader, value: bytes, headers: Mapping[str, str]) -> Envelope:
        full_name, body = reader(value[HEADER_SIZE:])
        event_type = headers.get(EVENT_TYPE_HEADER) or self.event_types.get(full_name, full_name)
        event_id = headers.get(EVENT_ID_HEADER) or str(uuid.uuid4())
        return event_id, event_type, body, timestamp_of(headers)

    async def _reader(self, schema_id: int) -> Reader:
        """The reader for an id, fetching its schema with backoff while that fails for a
        reason that may pass (registry unreachable, id unknown to it yet)."""
        started = time.monotonic()
        delay = self.retry_initial
        while True:
            if schema_id in self._broken:
                raise UndecodableRecordError(self._broken[schema_id])
            found = self._readers.get(schema_id)
            if found is not None:
                return found
            try:
                registered = await self.registry.schema(schema_id)
            except (SchemaRegistryUnavailableError, UnknownSchemaIdError) as error:
                waited = time.monotonic() - started
                if self.give_up_after is not None and waited >= self.give_up_after:
                    raise UndecodableRecordError(
                        f"schema id {schema_id}: gave up after {waited:.0f} s: {error}"
                    ) from None
                logger.warning("schema id %d: %s; trying again in %.1f s", schema_id, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            try:
                reader = self._readers[schema_id] = self._make_reader(registered)
            except UndecodableRecordError as error:
                self._broken[schema_id] = str(error)
                raise
            return reader

    def _make_reader(self, registered: RegisteredSchema) -> Reader:
        where = f"schema id {registered.id}"
        if registered.schema_type == "JSON":
            return _json_reader(registered.text, where)
        if registered.schema_type == "PROTOBUF":
            from dispytch.schemas.protobuf_wire import protobuf_reader

            return protobuf_reader(registered.text, where, self._messages)
        try:
            writer = parse_avro(json.loads(registered.text), where)
        except (ValueError, SchemaDefinitionError) as error:
            raise UndecodableRecordError(f"{where} does not parse: {error}") from None
        reader = self._reader_schemas.get(writer.full_name)
        return _avro_reader(writer, reader)


def _json_reader(text: str, where: str) -> Reader:
    """JSON Schema: the payload is JSON; the handler's model validates it."""
    try:
        schema = json.loads(text)
    except ValueError as error:
        raise UndecodableRecordError(f"{where} does not parse: {error}") from None
    title = schema.get("title") if isinstance(schema, dict) else None
    full_name = title if isinstance(title, str) and title else "json"

    def read(payload: bytes) -> tuple[str, Any]:
        try:
            return full_name, from_json(payload)
        except ValueError as error:
            raise UndecodableRecordError(
                f"payload is not the JSON of its schema {full_name}: {str(error)[:200]}"
            ) from None

    return read


def _avro_reader(writer: SchemaOf, reader: SchemaOf | None) -> Reader:
    from fastavro import schemaless_reader

    full_name = writer.full_name
    writer_schema = writer.parsed
    reader_schema = None if reader is None else reader.parsed

    def read(payload: bytes) -> tuple[str, Any]:
        source = io.BytesIO(payload)
        try:
            body = schemaless_reader(source, writer_schema, reader_schema)
        except Exception as error:
            raise UndecodableRecordError(
                f"payload does not decode with its Avro schema {full_name}: "
                f"{type(error).__name__}: {str(error)[:200]}"
            ) from None
        if source.tell() != len(payload):
            raise UndecodableRecordError(
                f"{len(payload) - source.tell()} bytes left after the Avro record {full_name}"
            )
        return full_name, body

    return read


def _message_entry(message: type[Any]) -> tuple[str, type[Any]]:
    """(full name, message class) of a message class, or of an event class's Protobuf codec."""
    message = getattr(getattr(message, "__codec__", None), "message", message)
    descriptor = getattr(message, "DESCRIPTOR", None)
    full_name = getattr(descriptor, "full_name", None)
    if not isinstance(full_name, str):
        raise TypeError(f"{message!r} is not a Protobuf message class")
    return full_name, message


def _reader_schema(model: type[BaseModel]) -> SchemaOf:
    codec = getattr(model, "__codec__", None)
    schema_of = getattr(codec, "schema_of", None)
    if schema_of is not None:
        found: SchemaOf = schema_of(model)
        return found
    return parse_avro(model_schema(model), model.__name__)


class SchemaRegistryCodec:
    """A listener's codec for one content type, decoding with a shared `SchemaDecoder`."""

    def __init__(self, decoder: SchemaDecoder, content_type: str = AVRO_CONTENT_TYPE) -> None:
        self.decoder = decoder
        self.content_type = content_type

    def encode(self, envelope: Mapping[str, Any], event: Any) -> Any:
        raise TypeError("this codec decodes; an event class emits with __codec__ = Avro(registry)")

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope | Awaitable[Envelope]:
        return self.decoder.decode(value, headers)
