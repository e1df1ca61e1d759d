"""Event classes for the schema tests, made per test so that topics and subjects are unique."""

from __future__ import annotations

import datetime
import enum
import uuid
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from dispytch import EventBase
from dispytch.schemas import Avro, SchemaRegistry


class Color(enum.Enum):
    red = "red"
    blue = "blue"


class Address(BaseModel):
    city: str
    zip: str | None = None


class Profile(BaseModel):
    """Every mapped type (docs/schemas.md, type mapping)."""

    name: str
    age: int
    score: float = 1.5
    active: bool = True
    avatar: bytes = b""
    joined: datetime.datetime
    birthday: datetime.date
    uid: uuid.UUID
    balance: Decimal = Field(max_digits=10, decimal_places=2)
    color: Color = Color.red
    nickname: str | None = None
    tags: list[str] = []
    counters: dict[str, int] = {}
    home: Address
    work: Address | None = None
    plan: Literal["free", "pro"] = "free"


def profile_event(registry: SchemaRegistry, topic: str, **avro: Any) -> type[EventBase]:
    class ProfileSaved(EventBase, Profile):
        __topic__ = topic
        __event_type__ = "profile_saved"
        __codec__ = Avro(registry, **avro)

    return ProfileSaved


def sample_profile(event_class: type[EventBase]) -> EventBase:
    return event_class(
        name="ada",
        age=36,
        avatar=b"\x00\xff",
        joined=datetime.datetime(2026, 12, 1, 10, 30, 0, 123456, tzinfo=datetime.timezone.utc),
        birthday=datetime.date(1815, 12, 10),
        uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        balance=Decimal("1234.50"),
        color=Color.blue,
        nickname="countess",
        tags=["math", "poetry"],
        counters={"notes": 7},
        home=Address(city="London"),
        work=Address(city="Ockham", zip="KT11"),
        plan="pro",
    )
