"""The seed's two examples, unchanged, on RabbitMQ through EventListener / EventEmitter."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from dispytch import Event, EventEmitter, EventListener
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQEventConfig, RabbitMQProducer

from ..seed import load_seed
from .conftest import Names, eventually, get_messages

pytestmark = pytest.mark.rabbitmq


class Registered(BaseModel):
    timestamp: int


async def test_seed_examples_on_rabbitmq(
    rabbitmq_url: str, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = load_seed("rabbitmq_seed_handlers", "handler_example.py")
    emitter_example = load_seed("rabbitmq_seed_emitter", "emitter_example.py")
    from service import get_user_service

    exchange = names.topology().exchange
    consumer = RabbitMQConsumer.create(rabbitmq_url, names.group("users"), exchange=exchange)
    listener = EventListener(consumer)
    listener.add_handler_group(handlers.user_events)
    user_id = uuid.uuid4()
    users = get_user_service().users

    async def handled() -> bool | None:
        return True if any(user.id == str(user_id) for user in users) else None

    producer = RabbitMQProducer.create(rabbitmq_url, exchange=exchange)
    # the listener's start declares and binds the group's queue before anything is emitted
    async with EventEmitter(producer) as emitter, listener:
        with monkeypatch.context() as patch:
            patch.setattr(emitter_example.uuid, "uuid4", lambda: user_id)
            await emitter_example.example_emit(emitter)
        await eventually(handled, timeout=10)
    (user,) = [user for user in users if user.id == str(user_id)]
    assert (user.email, user.name) == ("example@mail.com", "John Doe")


async def test_backend_config_through_the_emitter(
    rabbitmq_url: str, names: Names, admin: Any
) -> None:
    emitter_example = load_seed("rabbitmq_seed_emitter", "emitter_example.py")
    exchange = names.topology().exchange
    audit = await admin.declare_queue(names.queue("audit"), durable=True)
    await audit.bind(await admin.declare_exchange(exchange, "topic", durable=True), "#")

    class Prioritized(emitter_example.UserRegistered):  # type: ignore[name-defined,misc]
        __topic__ = "users:registered"
        __backend_config__ = RabbitMQEventConfig(priority=7, headers={"tenant": "t1"})

    seen: list[int] = []
    consumer = RabbitMQConsumer.create(rabbitmq_url, names.group("g"), exchange=exchange)
    listener = EventListener(consumer)

    @listener.handler(topic="users:{kind}", event="user_registered")
    async def on_user(event: Event[Registered]) -> None:
        seen.append(event.body.timestamp)

    async def all_seen() -> bool | None:
        return True if len(seen) == 5 else None

    user = emitter_example.User(id="u7", email="e@x", name="n")
    producer = RabbitMQProducer.create(rabbitmq_url, exchange=exchange)
    async with EventEmitter(producer) as emitter, listener:
        await emitter.emit_many([Prioritized(user=user, timestamp=n) for n in range(5)])
        await eventually(all_seen, timeout=10)
    assert sorted(seen) == list(range(5))
    copies = await get_messages(admin, audit.name, 5)
    assert {m.priority for m in copies} == {7}
    assert {m.headers["tenant"] for m in copies} == {"t1"}
    assert {m.routing_key for m in copies} == {"users.registered"}
