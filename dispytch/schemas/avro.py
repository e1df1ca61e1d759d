"""Avro, emitting side: `__codec__ = Avro(registry)` on an `EventBase` subclass.

The schema is generated from the model (`dispytch.schemas.avro_types`) or given (an `.avsc`
file or a dict) when the class is defined; the schema id is looked up (or registered) at the
first emit and cached. An event is written as the Confluent wire format, its id, type and
timestamp in headers.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dispytch.schemas.avro_schema import AVRO_CONTENT_TYPE, fastavro_module, parse_avro
from dispytch.schemas.avro_types import model_schema
from dispytch.schemas.errors import RecordMismatchError, SchemaDefinitionError
from dispytch.schemas.format import SchemaFormat
from dispytch.schemas.schema_of import SchemaOf

if TYPE_CHECKING:
    from dispytch.events import EventBase
    from dispytch.schemas.registry import SchemaRegistry


class Avro(SchemaFormat):
    """The Avro format for an event class, through a schema registry.

    `schema`: None to generate it from the model; else a dict, or the path of an `.avsc`
    file. `name` and `namespace`: the generated record's (default: the class name, no
    namespace); a foreign message's event type is the writer record's full name.
    """

    content_type = AVRO_CONTENT_TYPE
    schema_type = "AVRO"

    def __init__(
        self,
        registry: SchemaRegistry,
        schema: Mapping[str, Any] | str | Path | None = None,
        *,
        name: str | None = None,
        namespace: str | None = None,
    ) -> None:
        super().__init__(registry)
        self.explicit = dict(schema) if isinstance(schema, Mapping) else schema
        self.name = name
        self.namespace = namespace

    def make_schema(self, event_class: type[EventBase]) -> SchemaOf:
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
        return parse_avro(schema, where)

    def write(self, event: EventBase, schema: SchemaOf) -> bytes:
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
