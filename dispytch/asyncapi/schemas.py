"""JSON schemas for AsyncAPI documents: pydantic models as AsyncAPI Schema Objects, the
envelope around an event body, and the message headers.

Pydantic writes JSON Schema draft 2020-12; AsyncAPI 3.0's default schema format is a superset
of draft 07. The differences that pydantic output can contain are converted: `prefixItems`
(tuples) becomes the array form of `items`, and an OpenAPI-style `discriminator` object becomes
the property name AsyncAPI expects. Definitions go to `components.schemas`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from dispytch.reasons import ATTEMPT_HEADER
from dispytch.serialization.base import CONTENT_TYPE_HEADER

SCHEMA_REF = "#/components/schemas/{model}"
ANY_EVENT_TYPE = "*"

BodyUse = tuple[type[BaseModel], JsonSchemaMode]


def model_schemas(uses: Iterable[BodyUse]) -> tuple[dict[BodyUse, Any], dict[str, Any]]:
    """For each (model, mode): a `$ref` to its schema; and every schema, by name."""
    unique = list(dict.fromkeys(uses))
    if not unique:
        return {}, {}
    refs, definitions = models_json_schema(unique, ref_template=SCHEMA_REF)
    components = {
        name: to_asyncapi_schema(schema) for name, schema in definitions.get("$defs", {}).items()
    }
    return {use: refs[use] for use in unique}, components


def to_asyncapi_schema(schema: Any) -> Any:
    """`schema` (draft 2020-12, as pydantic writes it) as an AsyncAPI Schema Object."""
    if isinstance(schema, list):
        return [to_asyncapi_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: to_asyncapi_schema(value) for key, value in schema.items()}
    if "prefixItems" in converted:
        converted["items"] = converted.pop("prefixItems")
        converted.pop("additionalItems", None)
    discriminator = converted.get("discriminator")
    if isinstance(discriminator, dict):
        converted["discriminator"] = discriminator.get("propertyName", "")
    return converted


def envelope_schema(event_type: str, body: Any, description: str | None = None) -> dict[str, Any]:
    """The wire envelope `{"id", "type", "body", "timestamp"}` with `body` (a schema) inside."""
    type_schema: dict[str, Any] = {"type": "string", "description": "The event type."}
    if event_type != ANY_EVENT_TYPE:
        type_schema["const"] = event_type
    envelope: dict[str, Any] = {
        "type": "object",
        "required": ["id", "type", "body"],
        "properties": {
            "id": {"type": "string", "description": "The event id (a uuid4 unless given)."},
            "type": type_schema,
            "body": body,
            "timestamp": {
                "type": "integer",
                "description": "When the event was emitted, in epoch milliseconds.",
            },
        },
    }
    if description:
        envelope["description"] = description
    return envelope


def headers_schema() -> dict[str, Any]:
    """The headers Dispytch writes and reads; brokers and other producers may add more."""
    properties: dict[str, Any] = {
        CONTENT_TYPE_HEADER: {
            "type": "string",
            "description": "The envelope's format: application/json (default) or "
            "application/msgpack.",
            "examples": ["application/json"],
        },
        ATTEMPT_HEADER: {
            "type": "string",
            "description": "Only on an event retried on the broker (delayed retries): the "
            "number of the attempt this delivery is.",
        },
    }
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": {"type": "string"},
    }
