"""The event every benchmark pushes through: a small nested pydantic body in the 0.10 envelope."""

from __future__ import annotations

import uuid

import pydantic_core
from pydantic import BaseModel

EVENT_TYPE = "user_registered"


class Address(BaseModel):
    street: str
    city: str
    zip: str


class User(BaseModel):
    id: str
    email: str
    name: str
    address: Address


class UserRegistered(BaseModel):
    user: User
    timestamp: int


def user(n: int) -> User:
    address = Address(street=f"{n} Main St", city="Springfield", zip="12345")
    return User(id=str(n), email=f"user{n}@example.com", name=f"User {n}", address=address)


def envelope(n: int) -> bytes:
    """The wire bytes of event number `n`."""
    body = UserRegistered(user=user(n), timestamp=n).model_dump(mode="json")
    payload = {"id": str(uuid.uuid4()), "type": EVENT_TYPE, "body": body, "timestamp": n}
    return pydantic_core.to_json(payload)
