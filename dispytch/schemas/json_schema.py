"""JSON Schema, emitting side: `__codec__ = JSONSchema(registry)` on an `EventBase` subclass.

The schema is the pydantic model's own JSON schema (serialization mode, without the event id,
which travels in a header), registered with `schemaType: JSON`; the record is the model's
JSON, which fits that schema by construction. Its `title` (the class name unless `title=`
is given) is the full name a foreign message's event type comes from.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from dispytch.schemas.errors import RecordMismatchError, SchemaDefinitionError
from dispytch.schemas.format import SchemaFormat
from dispytch.schemas.schema_of import SchemaOf

if TYPE_CHECKING:
    from dispytch.events import EventBase
    from dispytch.schemas.registry import SchemaRegistry

JSON_SCHEMA_CONTENT_TYPE = "application/vnd.confluent.jsonschema"


class JSONSchema(SchemaFormat):
    """The JSON Schema format for an event class, through a schema registry."""

    content_type = JSON_SCHEMA_CONTENT_TYPE
    schema_type = "JSON"

    def __init__(self, registry: SchemaRegistry, *, title: str | None = None) -> None:
        super().__init__(registry)
        self.title = title

    def make_schema(self, event_class: type[EventBase]) -> SchemaOf:
        try:
            schema = event_class.model_json_schema(mode="serialization")
        except Exception as error:  # pydantic: a field type without a JSON schema
            raise SchemaDefinitionError(
                f"{event_class.__name__}: no JSON schema: {error}"
            ) from None
        schema["title"] = title = self.title or event_class.__name__
        properties = schema.get("properties")
        if isinstance(properties, dict):
            properties.pop("id", None)
            if "id" in schema.get("required", ()):
                schema["required"] = [name for name in schema["required"] if name != "id"]
        text = json.dumps(schema, separators=(",", ":"), sort_keys=True)
        return SchemaOf(text, schema, title)

    def write(self, event: EventBase, schema: SchemaOf) -> bytes:
        try:
            return event.model_dump_json().encode()
        except ValueError as error:
            raise RecordMismatchError(f"{type(event).__name__} has no JSON form: {error}") from None
