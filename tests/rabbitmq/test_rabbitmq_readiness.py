"""Readiness on RabbitMQ: not ready while the connection is down, ready again once aio-pika
has reconnected. "Down" is a `BrokerGate` in front of the shared broker cutting every
connection (the shared broker itself is not touched)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from dispytch import Event, EventListener
from dispytch.observability.health import Health
from dispytch.rabbitmq import RabbitMQConsumer
from tests.broker_gate import BrokerGate
from tests.readiness import walk_the_readiness_cycle

from .conftest import Names
from .test_rabbitmq_lifecycle import through

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def gate(rabbitmq_url: str) -> AsyncIterator[BrokerGate]:
    target = urlsplit(rabbitmq_url)
    opened = BrokerGate(target.hostname or "127.0.0.1", target.port or 5672)
    yield opened
    await opened.shut()


async def test_not_ready_while_the_connection_is_down(
    rabbitmq_url: str, names: Names, gate: BrokerGate
) -> None:
    await gate.open()
    consumer = RabbitMQConsumer.create(
        through(gate, rabbitmq_url),
        names.group("g"),
        exchange=names.topology().exchange,
        reconnect_interval=0.2,
    )
    listener = EventListener(consumer)

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Any]) -> None:
        pass

    health = Health(listener, cache_for=0)
    async with listener:
        await walk_the_readiness_cycle(health, gate.shut, gate.open)
