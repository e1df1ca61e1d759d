"""An Avro schema as Dispytch holds it: checked, parsed, named (fastavro)."""

from __future__ import annotations

import json
from typing import Any

from dispytch.schemas.avro_types import has_enums
from dispytch.schemas.errors import SchemaDefinitionError
from dispytch.schemas.schema_of import SchemaOf

AVRO_CONTENT_TYPE = "application/vnd.confluent.avro"


def fastavro_module() -> Any:
    try:
        import fastavro
    except ImportError:
        raise ImportError("Avro needs fastavro: pip install 'dispytch[avro]'") from None
    return fastavro


def parse_avro(schema: Any, where: str) -> SchemaOf:
    """A schema (dict, list or JSON text) checked and parsed; `SchemaDefinitionError` if not."""
    fastavro = fastavro_module()
    try:
        if isinstance(schema, str):
            schema = json.loads(schema)
        parsed = fastavro.parse_schema(schema)
    except Exception as error:
        raise SchemaDefinitionError(f"{where}: not a valid Avro schema: {error}") from None
    text = json.dumps(schema, separators=(",", ":"), sort_keys=True)
    name = parsed.get("name") if isinstance(parsed, dict) else None
    full_name = name if isinstance(name, str) else str(parsed.get("type", "avro"))
    return SchemaOf(text, parsed, full_name, has_enums(schema))
