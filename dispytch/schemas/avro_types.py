"""An Avro schema from a pydantic model: the documented type mapping (docs/schemas.md).

A field whose type has no mapping fails here, when the event class is defined, with an error
that names the model and the field.
"""

from __future__ import annotations

import datetime
import enum
import re
import types
import typing
import uuid
from decimal import Decimal
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from dispytch.schemas.errors import SchemaDefinitionError

AvroSchema = Any  # a JSON-compatible Avro schema: a str, a list (union) or a dict
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRIMITIVES: dict[Any, AvroSchema] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
    datetime.datetime: {"type": "long", "logicalType": "timestamp-micros"},
    datetime.date: {"type": "int", "logicalType": "date"},
    uuid.UUID: {"type": "string", "logicalType": "uuid"},
}


class _Unmappable(Exception):
    pass


def model_schema(
    model: type[BaseModel], name: str | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """The Avro record schema of `model` (named `name`, by default the class name)."""
    schema = _Builder().record(model, name or model.__name__)
    if namespace:
        schema["namespace"] = namespace
    return schema


def has_enums(schema: AvroSchema) -> bool:
    """True when a value of `schema` may hold an Enum member to write as its value."""
    if isinstance(schema, list):
        return any(has_enums(branch) for branch in schema)
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "enum":
            return True
        if kind == "record":
            return any(has_enums(field["type"]) for field in schema.get("fields", ()))
        return has_enums(schema.get("items")) or has_enums(schema.get("values"))
    return False


class _Builder:
    def __init__(self) -> None:
        self.defined: set[str] = set()

    def record(self, model: type[BaseModel], name: str) -> dict[str, Any]:
        if not _NAME.match(name):
            raise SchemaDefinitionError(f"{name!r} is not an Avro name ([A-Za-z_][A-Za-z0-9_]*)")
        self.defined.add(name)
        fields = []
        for field_name, info in model.model_fields.items():
            if not _NAME.match(field_name):
                raise SchemaDefinitionError(
                    f"field {field_name!r} of {model.__name__}: not an Avro name"
                )
            if field_name == "id" and info.exclude:  # EventBase's id travels in a header
                continue
            try:
                fields.append(self.field(field_name, info))
            except _Unmappable as why:
                raise SchemaDefinitionError(
                    f"field {field_name!r} of {model.__name__}: {why} (see docs/schemas.md, "
                    "type mapping; or give the schema explicitly)"
                ) from None
        return {"type": "record", "name": name, "fields": fields}

    def field(self, name: str, info: FieldInfo) -> dict[str, Any]:
        schema = self.type_of(info.annotation, info)
        field: dict[str, Any] = {"name": name, "type": schema}
        default = info.default
        if default is not PydanticUndefined and info.default_factory is None:
            if default is None and isinstance(schema, list) and "null" in schema:
                schema.remove("null")
                schema.insert(0, "null")
                field["default"] = None
            elif default is not None:
                json_default = _json_default(default)
                if json_default is not _NO_DEFAULT:
                    if isinstance(schema, list):  # the default's branch goes first
                        _first_branch_for(schema, default)
                    field["default"] = json_default
        return field

    def type_of(self, annotation: Any, info: FieldInfo | None = None) -> AvroSchema:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Annotated:
            return self.type_of(args[0], info)
        if annotation in _PRIMITIVES:
            found = _PRIMITIVES[annotation]
            return dict(found) if isinstance(found, dict) else found
        if annotation is Decimal:
            return _decimal(info)
        if annotation is type(None):
            return "null"
        if origin in (Union, types.UnionType):
            branches: list[Any] = []
            for arg in args:
                branch = self.type_of(arg, info)
                if isinstance(branch, list):
                    raise _Unmappable("a union inside a union")
                branches.append(branch)
            return branches
        if origin is Literal:
            if all(isinstance(a, str) for a in args):
                return "string"
            if all(type(a) is int for a in args):
                return "long"
            raise _Unmappable(f"Literal{list(args)!r} mixes types")
        if origin in (list, typing.List, tuple, set, frozenset) or _is_sequence(origin):  # noqa: UP006
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                raise _Unmappable("a fixed-length tuple (use list[X] or tuple[X, ...])")
            if not args:
                raise _Unmappable(f"{annotation!r} without an item type")
            return {"type": "array", "items": self.type_of(args[0])}
        if origin in (dict, typing.Dict) or _is_mapping(origin):  # noqa: UP006
            if not args or args[0] is not str:
                raise _Unmappable("a dict whose keys are not str (Avro maps have string keys)")
            return {"type": "map", "values": self.type_of(args[1])}
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return self.enum(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ in self.defined:
                return annotation.__name__  # defined earlier in this schema: by name
            return self.record(annotation, annotation.__name__)
        raise _Unmappable(f"type {_type_name(annotation)} has no Avro mapping")

    def enum(self, enum_class: type[enum.Enum]) -> AvroSchema:
        name = enum_class.__name__
        if name in self.defined:
            return name
        symbols = [member.value for member in enum_class]
        if not all(isinstance(s, str) and _NAME.match(s) for s in symbols):
            raise _Unmappable(
                f"enum {name}: Avro enum symbols are names ([A-Za-z_][A-Za-z0-9_]*), "
                f"its values are {symbols!r:.80}"
            )
        self.defined.add(name)
        return {"type": "enum", "name": name, "symbols": symbols}


_NO_DEFAULT = object()


def _json_default(value: Any) -> Any:
    """A field default as Avro writes it in a schema, or _NO_DEFAULT when it has no form."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, dict)) and not value:
        return type(value)()
    return _NO_DEFAULT


def _first_branch_for(branches: list[Any], default: Any) -> None:
    kinds = {bool: "boolean", int: "long", float: "double", str: "string"}
    kind = kinds.get(type(default))
    if kind in branches:
        branches.remove(kind)
        branches.insert(0, kind)


def _decimal(info: FieldInfo | None) -> AvroSchema:
    digits = places = None
    for meta in info.metadata if info is not None else ():
        digits = getattr(meta, "max_digits", digits)
        places = getattr(meta, "decimal_places", places)
    if digits is None or places is None:
        raise _Unmappable(
            "Decimal needs Field(max_digits=..., decimal_places=...) for Avro's decimal type"
        )
    return {"type": "bytes", "logicalType": "decimal", "precision": digits, "scale": places}


def _is_sequence(origin: Any) -> bool:
    import collections.abc as abc

    return origin in (abc.Sequence, abc.MutableSequence, abc.Set, abc.MutableSet)


def _is_mapping(origin: Any) -> bool:
    import collections.abc as abc

    return origin in (abc.Mapping, abc.MutableMapping)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)
