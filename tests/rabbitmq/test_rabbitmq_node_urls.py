"""A URL listing several nodes (`amqp://a/,amqp://b/`): the consumer and the producer connect
to the first node that accepts, and a running consumer that loses its node moves on to the
next one by itself.

The "nodes" are `BrokerGate`s in front of the one shared broker: shutting a gate is a node
going down for this client only (the cluster tests do it with real nodes, tests/cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer
from dispytch.rabbitmq._connect import node_urls
from tests.broker_gate import BrokerGate

from .conftest import Names

pytestmark = pytest.mark.rabbitmq

WAIT = 20.0


class Body(BaseModel):
    n: int


class Ping(EventBase):
    __topic__ = "t"
    __event_type__ = "e"
    n: int


def through(gate: BrokerGate, url: str) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{gate.address}"))


@pytest.fixture
async def gates(rabbitmq_url: str) -> AsyncIterator[list[BrokerGate]]:
    target = urlsplit(rabbitmq_url)
    made = [BrokerGate(target.hostname or "127.0.0.1", target.port or 5672) for _ in range(2)]
    yield made
    for gate in made:
        await gate.shut()


def test_node_urls_split_on_a_comma_before_a_scheme_only() -> None:
    assert node_urls("amqp://u:p,w@a:1/, amqps://b:2/v") == ["amqp://u:p,w@a:1/", "amqps://b:2/v"]
    assert node_urls("amqp://a/") == ["amqp://a/"]


async def test_the_first_node_that_accepts_is_used(
    rabbitmq_url: str, names: Names, gates: list[BrokerGate]
) -> None:
    down, up = gates
    await up.open()  # `down` never listens: connections are refused
    urls = f"{through(down, rabbitmq_url)},{through(up, rabbitmq_url)}"
    exchange = names.topology().exchange
    consumer = RabbitMQConsumer.create(urls, names.group("g"), exchange=exchange)
    listener = EventListener(consumer)
    handled: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Body]) -> None:
        handled.append(event.body.n)

    producer = RabbitMQProducer.create(urls, exchange=exchange)
    async with listener, EventEmitter(producer) as emitter:
        await emitter.emit(Ping(n=1), timeout=WAIT)
        await _wait_for(lambda: handled == [1])
    assert up.accepted >= 2  # the consumer's connection and the producer's
    assert down.accepted == 0


async def test_a_consumer_that_loses_its_node_moves_to_the_next(
    rabbitmq_url: str, names: Names, gates: list[BrokerGate]
) -> None:
    first, second = gates
    for gate in gates:
        await gate.open()
    exchange = names.topology().exchange
    urls = f"{through(first, rabbitmq_url)},{through(second, rabbitmq_url)}"
    consumer = RabbitMQConsumer.create(
        urls, names.group("g"), exchange=exchange, reconnect_interval=0.2
    )
    listener = EventListener(consumer)
    handled: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Body]) -> None:
        handled.append(event.body.n)

    producer = RabbitMQProducer.create(rabbitmq_url, exchange=exchange)
    async with listener, EventEmitter(producer) as emitter:
        await emitter.emit(Ping(n=1), timeout=WAIT)
        await _wait_for(lambda: handled == [1])
        assert first.open_connections == 1
        assert second.accepted == 0
        await first.shut()  # the node goes down, and stays down
        await _wait_for(lambda: second.open_connections == 1)
        await emitter.emit(Ping(n=2), timeout=WAIT)
        # 1 may come again: its ack may have been on the way when the node went down
        await _wait_for(lambda: set(handled) == {1, 2})


async def _wait_for(condition: object) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
