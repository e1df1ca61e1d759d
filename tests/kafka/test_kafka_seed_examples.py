"""The seed's two examples, unchanged, running on Kafka through EventListener/EventEmitter."""

from __future__ import annotations

import uuid

import pytest

from dispytch import Event, EventEmitter, EventListener
from dispytch.kafka import KafkaConsumer, KafkaEventConfig, KafkaProducer

from ..seed import load_seed
from .conftest import NewTopicFactory
from .kafka_helpers import eventually, group_name, read_topic

pytestmark = pytest.mark.kafka


async def test_seed_examples_on_kafka(bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_emitter = load_seed("kafka_seed_emitter", "emitter_example.py")
    seed_handlers = load_seed("kafka_seed_handlers", "handler_example.py")
    from service import get_user_service

    # the examples use the fixed topic "user_events": a fresh group reads it from the start,
    # so earlier runs' events come too; this run's user is told apart by its id
    consumer = KafkaConsumer.create(bootstrap, group_name())
    listener = EventListener(consumer)
    listener.add_handler_group(seed_handlers.user_events)
    emitter = EventEmitter(KafkaProducer.create(bootstrap))
    user_id = uuid.uuid4()
    users = get_user_service().users

    async def handled() -> bool:
        return any(user.id == str(user_id) for user in users)

    async with emitter, listener:
        with monkeypatch.context() as patch:
            patch.setattr(seed_emitter.uuid, "uuid4", lambda: user_id)
            await seed_emitter.example_emit(emitter)
        await eventually(handled, timeout=30, what="the seed handler to run")
    (user,) = [user for user in users if user.id == str(user_id)]
    assert (user.email, user.name) == ("example@mail.com", "John Doe")


async def test_event_backend_config_reaches_kafka(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    seed_emitter = load_seed("kafka_seed_emitter", "emitter_example.py")

    topic = await new_topic(partitions=4)

    class Keyed(seed_emitter.UserRegistered):  # type: ignore[misc]
        __topic__ = topic
        __backend_config__ = KafkaEventConfig(partition_key="user-7", headers={"tenant": b"t1"})

    handled: list[int] = []
    listener = EventListener(KafkaConsumer.create(bootstrap, group_name()))

    @listener.handler(topic=topic, event="user_registered")
    async def on_user(event: Event[seed_emitter.UserRegistered]) -> None:
        handled.append(event.body.timestamp)

    async def all_handled() -> bool:
        return len(handled) >= 10

    user = seed_emitter.User(id="u7", email="e@x", name="n")
    async with EventEmitter(KafkaProducer.create(bootstrap)) as emitter, listener:
        await emitter.emit_many([Keyed(user=user, timestamp=n) for n in range(10)])
        await eventually(all_handled, timeout=30, what="ten events")
    assert handled == list(range(10))  # one key, one partition: handled in order

    records = await read_topic(bootstrap, topic, 10)
    assert {key for _, key, _ in records} == {b"user-7"}
    assert all(headers["tenant"] == b"t1" for _, _, headers in records)
