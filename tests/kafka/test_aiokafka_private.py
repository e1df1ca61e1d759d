"""The private attributes of aiokafka that `dispytch.kafka._aiokafka_private` reads exist on
the installed aiokafka and mean what that module takes them to mean. When an aiokafka release
changes one, this fails: fix the module, then raise the bound in pyproject.toml."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener

from dispytch.kafka import _aiokafka_private as private


def _resolve(obj: Any, path: str) -> None:
    for name in path.split("."):
        assert hasattr(obj, name), f"aiokafka {type(obj).__name__} has no attribute {name!r}"
        obj = getattr(obj, name)


class _Listener(ConsumerRebalanceListener):
    async def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


async def test_every_private_attribute_read_exists_on_the_installed_aiokafka() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", group_id="g")
    consumer.subscribe(topics=["t"])
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    clients = {AIOKafkaConsumer: consumer, AIOKafkaProducer: producer}
    for client_class, path in private.READS:
        _resolve(clients[client_class], path)


async def test_what_is_read_of_an_unstarted_consumer() -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers="127.0.0.1:1",
        group_id="the-group",
        enable_auto_commit=False,
        client_id="the-client",
        request_timeout_ms=12_345,
    )
    settings = private.connection_settings(consumer, frozenset({"client_id", "request_timeout_ms"}))
    assert settings == {
        "bootstrap_servers": "127.0.0.1:1",
        "client_id": "the-client",
        "request_timeout_ms": 12_345,
    }
    assert private.group_id(consumer) == "the-group"
    assert private.auto_commit_enabled(consumer) is False
    assert private.auto_commit_enabled(AIOKafkaConsumer(bootstrap_servers="h:1")) is True
    assert private.group_id(AIOKafkaConsumer(bootstrap_servers="h:1")) is None
    assert private.consumer_started(consumer) is False
    assert private.subscription(consumer) is None

    theirs = _Listener()
    consumer.subscribe(topics=["a", "b"], listener=theirs)
    assert private.subscription(consumer) == (frozenset({"a", "b"}), None)
    ours = _Listener()
    assert private.put_listener_first(consumer, ours) is theirs
    assert private.put_listener_first(consumer, theirs) is ours

    by_pattern = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    by_pattern.subscribe(pattern="orders-.*")
    assert private.subscription(by_pattern) == (frozenset(), "orders-.*")


@pytest.mark.kafka
async def test_started_is_read_right_on_started_clients(bootstrap: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=uuid.uuid4().hex)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    assert not private.producer_started(producer)
    await consumer.start()
    await producer.start()
    try:
        assert private.consumer_started(consumer)
        assert private.producer_started(producer)
    finally:
        await consumer.stop()
        await producer.stop()
