"""Avro, emitting side: `__codec__ = Avro(registry)` on an `EventBase` subclass.

The schema is generated from the model (`dispytch.schemas.avro_types`) or given (an `.avsc`
file or a dict) when the class is defined; the schema id is looked up (or registered) at the
first emit and cached. An event is written as the Confluent wire format, its id, type and
timestamp in headers.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dispytch.schemas.avro_schema import (
    AVRO_CONTENT_TYPE,
    AvroSchemaOf,
    fastavro_module,
    parse_avro,
)
from dispytch.schemas.avro_types import model_schema
from dispytch.schemas.decoding import SchemaDecoder
from dispytch.schemas.errors import RecordMismatchError, SchemaDefinitionError
from dispytch.schemas.headers import event_headers
from dispytch.schemas.wire import frame
from dispytch.serialization.codec import Encoded
from dispytch.topics import fill_topic

if TYPE_CHECKING:
    from dispytch.envelope import Envelope
    from dispytch.events import EventBase
    from dispytch.schemas.registry import SchemaRegistry


class Avro:
    """The Avro format for an event class, through a schema registry.

    `schema`: None to generate it from the model; else a dict, or the path of an `.avsc`
    file. `name` and `namespace`: the generated record's (default: the class name, no
    namespace); a foreign message's event type is the writer record's full name.
    """

    content_type = AVRO_CONTENT_TYPE
    body_as_json = False  # the envelope's body is not used: the record is the event's values

    def __init__(
        self,
        registry: SchemaRegistry,
        schema: Mapping[str, Any] | str | Path | None = None,
        *,
        name: str | None = None,
        namespace: str | None = None,
    ) -> None:
        self.registry = registry
        self.explicit = dict(schema) if isinstance(schema, Mapping) else schema
        self.name = name
        self.namespace = namespace
        self._schemas: dict[type, AvroSchemaOf] = {}
        self._decoder: SchemaDecoder | None = None

    def __repr__(self) -> str:
        return f"Avro({self.registry!r})"

    def bind(self, event_class: type[EventBase]) -> AvroSchemaOf:
        """The class's schema, made (and checked) once; called when the class is defined."""
        where = event_class.__name__
        if self.explicit is None:
            schema: Any = model_schema(event_class, self.name or where, self.namespace)
        elif isinstance(self.explicit, dict):
            schema = self.explicit
        else:
            try:
                schema = Path(self.explicit).read_text(encoding="utf-8")
            except OSError as error:
                raise SchemaDefinitionError(
                    f"{where}: cannot read {self.explicit}: {error}"
                ) from None
        bound = self._schemas[event_class] = parse_avro(schema, where)
        return bound

    def schema_of(self, event_class: type[EventBase]) -> AvroSchemaOf:
        return self._schemas.get(event_class) or self.bind(event_class)

    def subject_of(self, event: EventBase, schema: AvroSchemaOf) -> str:
        topic = fill_topic(event, None)
        subject = schema.subjects.get(topic)
        if subject is None:
            subject = schema.subjects[topic] = self.registry.subject_for(topic, schema.full_name)
        return subject

    def encode(self, envelope: Mapping[str, Any], event: EventBase) -> Encoded | Awaitable[Encoded]:
        schema = self._schemas.get(type(event)) or self.bind(type(event))
        subject = self.subject_of(event, schema)
        schema_id = self.registry.cached_id(subject, "AVRO", schema.text)
        if schema_id is None:
            return self._encode_later(envelope, event, schema, subject)
        return self._encode(envelope, event, schema, schema_id)

    async def _encode_later(
        self, envelope: Mapping[str, Any], event: EventBase, schema: AvroSchemaOf, subject: str
    ) -> Encoded:
        self._write(event, schema)  # an event that does not fit fails before any registry I/O
        schema_id = await self.registry.id_for(subject, "AVRO", schema.text)
        return self._encode(envelope, event, schema, schema_id)

    def _encode(
        self, envelope: Mapping[str, Any], event: EventBase, schema: AvroSchemaOf, schema_id: int
    ) -> Encoded:
        return frame(schema_id, self._write(event, schema)), event_headers(envelope)

    def _write(self, event: EventBase, schema: AvroSchemaOf) -> bytes:
        datum = event.model_dump()
        if schema.has_enums:
            datum = _plain(datum)
        out = io.BytesIO()
        try:
            fastavro_module().schemaless_writer(out, schema.parsed, datum)
        except Exception as error:
            raise RecordMismatchError(
                f"{type(event).__name__} does not fit its Avro schema {schema.full_name}: "
                f"{_why(schema.parsed, datum, error)}"
            ) from None
        return out.getvalue()

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope | Awaitable[Envelope]:
        """Any message in the Confluent wire format (see `registry.codecs()` for a listener's)."""
        if self._decoder is None:
            self._decoder = SchemaDecoder(self.registry)
        return self._decoder.decode(value, headers)


def _plain(value: Any) -> Any:
    """`value` with Enum members replaced by their values (Avro writes enum symbols)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _why(parsed: Any, datum: Any, error: Exception) -> str:
    """The validator's account of what does not fit (it names the field), else the writer's."""
    from fastavro.validation import ValidationError, validate

    try:
        validate(datum, parsed, raise_errors=True)
    except ValidationError as invalid:
        return str(invalid)[:500]
    except Exception:
        pass
    return f"{type(error).__name__}: {str(error)[:300]}"
