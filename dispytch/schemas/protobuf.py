"""Protobuf, emitting side: `__codec__ = Protobuf(registry, OrderPlacedMessage)` on an
`EventBase` subclass binds the pydantic model to the user's generated message class.

The registered schema is the message's file (its FileDescriptorProto, base64, as Confluent's
serializers register it); the record is the message made from the event's values, after
the Confluent message indexes. Every model field must be a field of the message (checked when
the class is defined); a value the message cannot hold fails the emit.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from dispytch.schemas.errors import RecordMismatchError, SchemaDefinitionError
from dispytch.schemas.format import SchemaFormat
from dispytch.schemas.protobuf_wire import encode_indexes
from dispytch.schemas.schema_of import SchemaOf

if TYPE_CHECKING:
    from dispytch.events import EventBase
    from dispytch.schemas.registry import SchemaRegistry

PROTOBUF_CONTENT_TYPE = "application/vnd.confluent.protobuf"


def message_indexes(descriptor: Any) -> list[int]:
    """The path of a message in its file: its index among its parent's messages, outermost
    first."""
    path = []
    while descriptor is not None:
        parent = descriptor.containing_type
        siblings = (
            parent.nested_types
            if parent is not None
            else list(descriptor.file.message_types_by_name.values())
        )
        path.append([s.full_name for s in siblings].index(descriptor.full_name))
        descriptor = parent
    return path[::-1]


class Protobuf(SchemaFormat):
    """The Protobuf format for an event class bound to a generated message class."""

    content_type = PROTOBUF_CONTENT_TYPE
    schema_type = "PROTOBUF"

    def __init__(self, registry: SchemaRegistry, message: type[Any]) -> None:
        super().__init__(registry)
        self.message = message
        descriptor = getattr(message, "DESCRIPTOR", None)
        if descriptor is None or not hasattr(descriptor, "fields_by_name"):
            raise SchemaDefinitionError(f"{message!r} is not a generated Protobuf message class")
        self.descriptor = descriptor
        self.prefix = encode_indexes(message_indexes(descriptor))

    def make_schema(self, event_class: type[EventBase]) -> SchemaOf:
        file = self.descriptor.file
        if file.dependencies:
            raise SchemaDefinitionError(
                f"{event_class.__name__}: {file.name} imports other files; schema references "
                "are not supported yet"
            )
        for name, info in event_class.model_fields.items():
            if name == "id" and info.exclude:
                continue
            if name not in self.descriptor.fields_by_name:
                raise SchemaDefinitionError(
                    f"field {name!r} of {event_class.__name__} is not a field of the Protobuf "
                    f"message {self.descriptor.full_name}"
                )
        text = base64.standard_b64encode(file.serialized_pb).decode("ascii")
        return SchemaOf(text, self.message, self.descriptor.full_name)

    def write(self, event: EventBase, schema: SchemaOf) -> bytes:
        from google.protobuf import json_format

        try:
            message = json_format.ParseDict(event.model_dump(mode="json"), self.message())
        except json_format.ParseError as error:
            raise RecordMismatchError(
                f"{type(event).__name__} does not fit the Protobuf message "
                f"{schema.full_name}: {error}"
            ) from None
        record: bytes = message.SerializeToString()
        return self.prefix + record
