"""Readiness on Redis Streams and NATS JetStream: ready while the consumer's connection answers,
not ready while it is down, ready again once the client has reconnected; live throughout.
"Down" is a `BrokerGate` in front of the shared server cutting every connection (the server
itself is not touched). RabbitMQ's counterpart is tests/rabbitmq/test_rabbitmq_readiness.py,
Kafka's tests/failures/test_readiness_outage.py."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from dispytch import Event, EventListener
from dispytch.backends.base import Consumer
from dispytch.observability.health import Health
from tests.broker_gate import BrokerGate
from tests.docs_on_brokers.brokers import require
from tests.readiness import walk_the_readiness_cycle

BACKENDS = [
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("nats", marks=pytest.mark.nats),
]


def _through(gate: BrokerGate, url: str) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{gate.address}" if credentials else gate.address
    return urlunsplit(parts._replace(netloc=netloc))


def _consumer(backend: str, url: str) -> tuple[Consumer, str]:
    """A consumer of `backend` on `url`, and the topic its handler takes."""
    name = uuid.uuid4().hex[:12]
    if backend == "redis":
        from dispytch.redis import RedisStreamConsumer

        return RedisStreamConsumer.create(url, f"ready-{name}", block=0.2), f"ready-{name}"
    from dispytch.nats import JetStreamTopology, NatsConsumer

    topology = JetStreamTopology(stream="DISPYTCH_TEST", subjects=("dtest.>",))
    topic = f"dtest.ready.{name}"
    return NatsConsumer(url, f"ready-{name}", topology=topology, topics=[topic]), topic


@pytest.mark.parametrize("backend", BACKENDS)
async def test_not_ready_while_the_connection_is_down(backend: str) -> None:
    broker = require(backend)
    gate = BrokerGate(*broker.host_and_port())
    await gate.open()
    try:
        consumer, topic = _consumer(backend, _through(gate, broker.address))
        listener = EventListener(consumer, topic_delimiter=".")

        @listener.handler(topic=topic, event="e")
        async def handle(event: Event[Any]) -> None:
            pass

        health = Health(listener, cache_for=0, timeout=1.0)
        async with listener:
            await walk_the_readiness_cycle(health, gate.shut, gate.open)
    finally:
        await gate.shut()
