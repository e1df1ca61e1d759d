"""The JSON envelope written in one pass (`dispytch.serialization.envelope_json`) is byte for
byte the envelope dispytch 0.10 wrote: the body's `model_dump(mode="json")` in a dict,
serialized with `pydantic_core.to_json` (kept here as the reference)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import time
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_serializer
from pydantic_core import to_json
from typing_extensions import TypedDict

from dispytch import EventBase, EventEmitter, InMemoryBroker
from dispytch.serialization import JSONSerializer, MessagePackCodec
from dispytch.serialization.envelope_json import _serializes_as_reference, envelope_json

INF, NAN = float("inf"), float("nan")


def reference(event: EventBase, event_type: str, timestamp_ms: int) -> bytes:
    """The envelope as the emitter wrote it before the one-pass encoding."""
    body = event.model_dump(mode="json")
    return to_json({"id": event.id, "type": event_type, "body": body, "timestamp": timestamp_ms})


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1


class Inner(BaseModel):
    x: float
    anything: Any = None


class InnerStrings(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")
    y: float


@dataclasses.dataclass
class Point:
    x: float
    label: str


class Shape(TypedDict):
    side: float


class Tree(BaseModel):
    value: float
    children: list[Tree] = []


class Scalars(EventBase):
    __topic__ = "t"
    __event_type__ = "scalars"
    text: str = "plain"
    number: int = 0
    big: int = 0
    real: float = 0.0
    maybe_real: Optional[float] = None  # noqa: UP045 - the Optional form on purpose
    amount: Decimal = Decimal("0")
    flag: bool = False
    nothing: None = None


class Temporal(EventBase):
    __topic__ = "t"
    __event_type__ = "temporal"
    at: datetime.datetime
    day: datetime.date
    clock: datetime.time
    span: datetime.timedelta


class Things(EventBase):
    __topic__ = "t"
    __event_type__ = "things"
    ref: uuid.UUID
    raw: bytes
    colour: Colour
    level: Level
    kind: Literal["a", "b"] = "a"
    untyped: Any = None
    items: list[Any] = []
    mapping: dict[str, Any] = {}
    int_keys: dict[int, float] = {}
    pair: tuple[int, float] = (0, 0.0)
    either: Union[int, str] = 0  # noqa: UP007
    tags: set[str] = set()


class Nested(EventBase):
    __topic__ = "t"
    __event_type__ = "nested"
    inner: Inner
    inners: list[Inner] = []
    by_name: dict[str, Inner] = {}
    strings: Optional[InnerStrings] = None  # noqa: UP045
    point: Optional[Point] = None  # noqa: UP045
    shape: Optional[Shape] = None  # noqa: UP045
    tree: Optional[Tree] = None  # noqa: UP045


class Aliased(EventBase):
    __topic__ = "t"
    __event_type__ = "aliased"
    model_config = ConfigDict(populate_by_name=True)
    user_name: str = Field(alias="userName")
    secret: str = Field(default="s", exclude=True)
    limited: Annotated[float, Field(serialization_alias="lim")] = 1.0

    @field_serializer("user_name")
    def shout(self, value: str) -> str:
        return value.upper()


class CustomSerialized(EventBase):
    __topic__ = "t"
    __event_type__ = "custom"
    n: float

    @model_serializer(mode="wrap")
    def wrapped(self, handler: Any) -> Any:
        return {**handler(self), "twice": self.n * 2, "extra": float("inf")}


def configured(mode: str) -> type[EventBase]:
    class Configured(EventBase):
        __topic__ = "t"
        __event_type__ = "configured"
        model_config = ConfigDict(ser_json_inf_nan=mode)  # type: ignore[typeddict-item]
        f: float
        untyped: Any = None
        inner: Optional[Inner] = None  # noqa: UP045
        values: list[Any] = []

    return Configured


class Labels(BaseModel):
    names: list[str]
    extra: Any = None


class NoFloats(EventBase):
    """No float field: the class's own serializer writes the reference's bytes."""

    __topic__ = "t"
    __event_type__ = "no-floats"
    text: str
    count: int
    amount: Decimal
    at: datetime.datetime
    ref: uuid.UUID
    raw: bytes
    colour: Colour
    untyped: Any = None
    labels: Optional[Labels] = None  # noqa: UP045
    by_key: dict[str, Labels] = {}


class InferredFloats(EventBase):
    """No float field, but serializers that return floats: untyped (`Any`) returns are
    written as the class's `ser_json_inf_nan` says in both encodings; a `float` return is a
    float field."""

    __topic__ = "t"
    __event_type__ = "inferred"
    n: int
    m: int = 0

    @field_serializer("n")
    def untyped(self, value: int) -> Any:
        return [float(value) * INF, NAN, value / 3]

    @field_serializer("m")
    def typed(self, value: int) -> float:
        return value * INF


class UntypedSerializer(EventBase):
    __topic__ = "t"
    __event_type__ = "untyped-serializer"
    n: int

    @field_serializer("n")
    def untyped(self, value: int) -> Any:
        return {"inf": float(value) * INF, "nan": NAN, "third": value / 3}


class ConstantInner(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="constants")
    x: float


class ConstantFloats(EventBase):
    """Floats in models that all write them as constants: one pass too."""

    __topic__ = "t"
    __event_type__ = "constant-floats"
    model_config = ConfigDict(ser_json_inf_nan="constants")
    f: float
    inner: ConstantInner
    values: list[float] = []


TZ = datetime.timezone(datetime.timedelta(hours=5, minutes=30))

EVENTS: list[EventBase] = [
    Scalars(),
    Scalars(text='quote " back \\ slash / nl \n tab \t nul \x00 \x1f é 漢字 🎉 \u2028 \ud7ff'),
    Scalars(number=-(2**63), big=2**200, real=1e308, maybe_real=-0.0, amount=Decimal("1.10")),
    Scalars(real=INF, maybe_real=-INF),
    Scalars.model_construct(amount=Decimal("Infinity"), real=INF),
    Scalars(real=NAN, maybe_real=NAN),
    Scalars.model_construct(amount=Decimal("NaN"), maybe_real=-INF),
    Scalars(real=5e-324, maybe_real=0.1 + 0.2, amount=Decimal("-1E+30"), flag=True),
    Temporal(
        at=datetime.datetime(2026, 12, 2, 3, 4, 5, 678901),
        day=datetime.date(1999, 1, 1),
        clock=datetime.time(23, 59, 59),
        span=datetime.timedelta(days=-1, seconds=3, microseconds=7),
    ),
    Temporal(
        at=datetime.datetime(2026, 1, 1, tzinfo=TZ),
        day=datetime.date(2026, 2, 28),
        clock=datetime.time(1, 2, tzinfo=datetime.timezone.utc),
        span=datetime.timedelta(0),
    ),
    Things(ref=uuid.UUID(int=7), raw=b"bytes \xc3\xa9", colour=Colour.RED, level=Level.LOW),
    Things(
        ref=uuid.uuid4(),
        raw=b"",
        colour=Colour.BLUE,
        level=Level.LOW,
        kind="b",
        untyped={"f": INF, "n": NAN, "l": [-INF, 1.5], "d": Decimal("2.5"), "b": b"x"},
        items=[INF, NAN, None, "s", 1, 2**70, uuid.UUID(int=1), datetime.date(2020, 1, 1)],
        mapping={"k": NAN, "é": {"deep": [INF]}},
        int_keys={1: INF, -2: NAN, 3: 0.5},
        pair=(1, -INF),
        either="text",
        tags={"one"},
    ),
    Nested(inner=Inner(x=1.0)),
    Nested(
        inner=Inner(x=INF, anything=NAN),
        inners=[Inner(x=NAN, anything=[INF]), Inner(x=-INF)],
        by_name={"a": Inner(x=INF, anything={"z": -INF})},
        strings=InnerStrings(y=NAN),
        point=Point(x=INF, label="p"),
        shape={"side": NAN},
        tree=Tree(value=INF, children=[Tree(value=NAN, children=[Tree(value=-INF)])]),
    ),
    Aliased(userName="ada", limited=INF),
    Aliased(user_name="bob", limited=NAN),
    CustomSerialized(n=INF),
    CustomSerialized(n=1.25),
    *(
        configured(mode)(
            f=value,
            untyped=value,
            inner=Inner(x=value, anything=value),
            values=[value, {"v": value}],
        )
        for mode in ("null", "constants", "strings")
        for value in (INF, -INF, NAN, 2.5)
    ),
    Scalars(id='id with "quotes" and é'),
    NoFloats(
        text='é "q" \n 🎉',
        count=2**80,
        amount=Decimal("-0.000001"),
        at=datetime.datetime(2026, 1, 1, 1, tzinfo=TZ),
        ref=uuid.UUID(int=9),
        raw=b"\x00\x01",
        colour=Colour.BLUE,
        untyped={"inf": INF, "nan": NAN, "list": [-INF, 1.5, None]},
        labels=Labels(names=["a", "ü"], extra=[NAN, INF]),
        by_key={"k": Labels(names=[], extra=-INF)},
    ),
    NoFloats(
        text="",
        count=0,
        amount=Decimal("1E+3"),
        at=datetime.datetime(1970, 1, 1),
        ref=uuid.UUID(int=0),
        raw=b"",
        colour=Colour.RED,
    ),
    InferredFloats(n=1, m=1),
    InferredFloats(n=-1),
    UntypedSerializer(n=1),
    UntypedSerializer(n=-2),
    ConstantFloats(f=INF, inner=ConstantInner(x=NAN), values=[-INF, 0.5, NAN]),
    ConstantFloats(f=1e-7, inner=ConstantInner(x=-0.0)),
    Temporal(
        at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
        day=datetime.date(2026, 2, 28),
        clock=datetime.time(0, 0),
        span=datetime.timedelta(days=400),
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{type(e).__name__}")
def test_one_pass_envelope_is_byte_identical_to_the_reference(event: EventBase) -> None:
    for event_type in ("scalars", 'odd "type" \u00e9'):
        for timestamp_ms in (0, int(time.time() * 1000), 2**53):
            assert envelope_json(event, event_type, timestamp_ms) == reference(
                event, event_type, timestamp_ms
            )


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{type(e).__name__}")
def test_the_emitter_sends_the_reference_bytes(event: EventBase) -> None:
    message = EventEmitter(InMemoryBroker().producer()).to_message(event)
    assert message.value == reference(event, type(event).__event_type__, message.timestamp_ms)
    assert message.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("event_class", "one_pass"),
    [
        (NoFloats, True),
        (UntypedSerializer, True),
        (InferredFloats, False),  # `typed` returns a float
        (ConstantFloats, True),
        (Temporal, True),
        (Scalars, False),  # float fields, the default ser_json_inf_nan
        (Things, False),  # floats inside a dict and a tuple
        (Nested, False),  # floats in nested models
        (Aliased, False),
        (configured("constants"), False),  # its nested `Inner` writes floats as null
    ],
)
def test_the_one_pass_path_is_taken_where_it_is_exact(
    event_class: type[EventBase], one_pass: bool
) -> None:
    assert _serializes_as_reference(event_class) is one_pass


def test_a_class_with_its_own_model_dump_keeps_it() -> None:
    class OwnDump(EventBase):
        __topic__ = "t"
        __event_type__ = "own"
        n: int

        def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
            return {"n": self.n + 1}

    message = EventEmitter(InMemoryBroker().producer()).to_message(OwnDump(n=1))
    assert b'"body":{"n":2}' in message.value


def test_other_codecs_still_get_the_dumped_envelope() -> None:
    event = Things(ref=uuid.UUID(int=3), raw=b"r", colour=Colour.RED, level=Level.LOW)
    serialized = EventEmitter(InMemoryBroker().producer(), JSONSerializer()).to_message(event)
    assert serialized.value == reference(event, "things", serialized.timestamp_ms)
    packed = EventEmitter(InMemoryBroker().producer(), codec=MessagePackCodec()).to_message(event)
    assert packed.headers["content-type"] == "application/msgpack"
    assert packed.value[:1] != b"{"
