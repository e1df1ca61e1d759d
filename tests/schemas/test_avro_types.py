"""The type mapping from pydantic models to Avro schemas, and the failures when a class is
defined. No registry is needed: the schema is made when the class is defined."""

from __future__ import annotations

import datetime
import enum
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from dispytch import EventBase
from dispytch.schemas import Avro, SchemaDefinitionError, SchemaRegistry

REGISTRY = SchemaRegistry("http://127.0.0.1:1/never-called")


class Level(enum.Enum):
    low = "low"
    high = "high"


class Point(BaseModel):
    x: int


def schema_of(event_class: type[EventBase]) -> Any:
    codec = event_class.__codec__
    assert isinstance(codec, Avro)
    return json.loads(codec.schema_of(event_class).text)


def test_each_type_maps_as_documented() -> None:
    class Mapped(EventBase):
        __topic__ = "t"
        __event_type__ = "mapped"
        __codec__ = Avro(REGISTRY, namespace="com.example")
        s: str
        i: int
        f: float
        b: bool
        raw: bytes
        at: datetime.datetime
        day: datetime.date
        uid: uuid.UUID
        money: Decimal = Field(max_digits=9, decimal_places=3)
        level: Level = Level.low
        maybe: int | None = None
        either: int | str = 0
        items: list[Point] = []
        counts: dict[str, float] = {}
        again: Point | None = None
        choice: Literal["a", "b"] = "a"
        number: Literal[1, 2] = 1

    schema = schema_of(Mapped)
    assert (schema["type"], schema["name"], schema["namespace"]) == (
        "record",
        "Mapped",
        "com.example",
    )
    fields = {f["name"]: f for f in schema["fields"]}
    assert "id" not in fields  # the event id travels in a header
    assert [fields[n]["type"] for n in ("s", "i", "f", "b", "raw")] == [
        "string", "long", "double", "boolean", "bytes",
    ]  # fmt: skip
    assert fields["at"]["type"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert fields["day"]["type"] == {"type": "int", "logicalType": "date"}
    assert fields["uid"]["type"] == {"type": "string", "logicalType": "uuid"}
    assert fields["money"]["type"] == {
        "type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 3,
    }  # fmt: skip
    assert fields["level"] == {
        "name": "level", "default": "low",
        "type": {"type": "enum", "name": "Level", "symbols": ["low", "high"]},
    }  # fmt: skip
    assert fields["maybe"] == {"name": "maybe", "type": ["null", "long"], "default": None}
    assert fields["either"] == {"name": "either", "type": ["long", "string"], "default": 0}
    point = {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "long"}]}
    assert fields["items"] == {
        "name": "items",
        "type": {"type": "array", "items": point},
        "default": [],
    }
    assert fields["counts"]["type"] == {"type": "map", "values": "double"}
    assert fields["again"]["type"] == ["null", "Point"]  # defined once, then by name
    assert (fields["choice"]["type"], fields["number"]["type"]) == ("string", "long")


@pytest.mark.parametrize(
    ("annotation", "why"),
    [
        (Any, "type Any has no Avro mapping"),
        (dict[int, str], "keys are not str"),
        (tuple[int, str], "fixed-length tuple"),
        (Decimal, "Decimal needs Field(max_digits"),
        (enum.Enum("Numbers", {"one": 1}), "Avro enum symbols are names"),
        (Literal["a", 1], "mixes types"),
        (int | str | None, None),  # a flat union: mapped
    ],
)
def test_a_field_without_a_mapping_fails_when_the_class_is_defined_naming_it(
    annotation: Any, why: str | None
) -> None:
    def define() -> type[EventBase]:
        namespace = {
            "__annotations__": {"fine": str, "tricky": annotation},
            "__topic__": "t",
            "__event_type__": "broken",
            "__codec__": Avro(REGISTRY),
        }
        return type("Broken", (EventBase,), namespace)

    if why is None:
        define()
        return
    with pytest.raises(SchemaDefinitionError) as raised:
        define()
    assert "field 'tricky' of Broken" in str(raised.value)
    assert why in str(raised.value)


def test_an_explicit_schema_from_a_dict_or_an_avsc_file(tmp_path: Path) -> None:
    schema = {"type": "record", "name": "Given", "namespace": "ns",
              "fields": [{"name": "n", "type": "int"}]}  # fmt: skip
    avsc = tmp_path / "given.avsc"
    avsc.write_text(json.dumps(schema))

    class FromDict(EventBase):
        __topic__ = "t"
        __event_type__ = "given"
        __codec__ = Avro(REGISTRY, schema)
        n: int

    class FromFile(EventBase):
        __topic__ = "t"
        __event_type__ = "given"
        __codec__ = Avro(REGISTRY, avsc)
        n: int

    assert schema_of(FromDict) == schema == schema_of(FromFile)
    assert FromFile.__codec__.schema_of(FromFile).full_name == "ns.Given"


def test_an_invalid_explicit_schema_fails_when_the_class_is_defined(tmp_path: Path) -> None:
    with pytest.raises(SchemaDefinitionError, match="not a valid Avro schema"):

        class Bad(EventBase):
            __topic__ = "t"
            __event_type__ = "bad"
            __codec__ = Avro(REGISTRY, {"type": "record", "name": "Bad", "fields": [{"name": 1}]})

    with pytest.raises(SchemaDefinitionError, match="cannot read"):

        class Missing(EventBase):
            __topic__ = "t"
            __event_type__ = "missing"
            __codec__ = Avro(REGISTRY, tmp_path / "nowhere.avsc")


def test_a_subclass_gets_its_own_schema() -> None:
    class Base(EventBase):
        __topic__ = "t"
        __event_type__ = "base"
        __codec__ = Avro(REGISTRY)
        a: int

    class Extended(Base):
        b: str = "x"

    assert [f["name"] for f in schema_of(Base)["fields"]] == ["a"]
    assert [f["name"] for f in schema_of(Extended)["fields"]] == ["a", "b"]
