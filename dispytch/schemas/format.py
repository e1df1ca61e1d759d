"""What every schema format does on the emitting side: a schema per event class made once
(when the class is defined), the subject by the registry's naming, the schema id looked up
(or registered) at the first emit and cached, the record framed in the Confluent wire format
with the event's id, type and timestamp in headers. A format says how to make its schema and
how to write an event (`Avro`, `JSONSchema`)."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from dispytch.schemas.decoding import SchemaDecoder
from dispytch.schemas.headers import event_headers
from dispytch.schemas.schema_of import SchemaOf
from dispytch.schemas.wire import frame
from dispytch.serialization.codec import Encoded
from dispytch.topics import fill_topic

if TYPE_CHECKING:
    from dispytch.envelope import Envelope
    from dispytch.events import EventBase
    from dispytch.schemas.registry import SchemaRegistry, SchemaType


class SchemaFormat:
    """Base of the schema formats: `__codec__ = Avro(registry)` on an event class."""

    content_type: str
    schema_type: SchemaType
    body_as_json = False  # the envelope's body is not used: the record is the event's values

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        self._schemas: dict[type, SchemaOf] = {}
        self._decoder: SchemaDecoder | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.registry!r})"

    def make_schema(self, event_class: type[EventBase]) -> SchemaOf:
        raise NotImplementedError

    def write(self, event: EventBase, schema: SchemaOf) -> bytes:
        """The event's record; `RecordMismatchError` when it does not fit the schema."""
        raise NotImplementedError

    def bind(self, event_class: type[EventBase]) -> SchemaOf:
        """The class's schema, made (and checked) once; called when the class is defined."""
        bound = self._schemas[event_class] = self.make_schema(event_class)
        return bound

    def schema_of(self, event_class: type[EventBase]) -> SchemaOf:
        return self._schemas.get(event_class) or self.bind(event_class)

    def subject_of(self, event: EventBase, schema: SchemaOf) -> str:
        topic = type(event).__topic__
        if "{" in topic:  # a topic with {field} values: this event's (the emitter checked it)
            topic = fill_topic(event, None)
        subject = schema.subjects.get(topic)
        if subject is None:
            subject = schema.subjects[topic] = self.registry.subject_for(topic, schema.full_name)
        return subject

    def encode(self, envelope: Mapping[str, Any], event: EventBase) -> Encoded | Awaitable[Encoded]:
        schema = self._schemas.get(type(event)) or self.bind(type(event))
        subject = self.subject_of(event, schema)
        schema_id = self.registry.cached_id(subject, self.schema_type, schema.text)
        if schema_id is None:
            return self._encode_later(envelope, event, schema, subject)
        return frame(schema_id, self.write(event, schema)), event_headers(envelope)

    async def _encode_later(
        self, envelope: Mapping[str, Any], event: EventBase, schema: SchemaOf, subject: str
    ) -> Encoded:
        record = self.write(event, schema)  # one that does not fit fails before registry I/O
        schema_id = await self.registry.id_for(subject, self.schema_type, schema.text)
        return frame(schema_id, record), event_headers(envelope)

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope | Awaitable[Envelope]:
        """Any message in the Confluent wire format (a listener's: `listener_codecs()`)."""
        if self._decoder is None:
            self._decoder = SchemaDecoder(self.registry)
        return self._decoder.decode(value, headers)
