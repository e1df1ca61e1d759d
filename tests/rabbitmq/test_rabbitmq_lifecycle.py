"""The listener's lifecycle on the real broker: stopped or given up while still connecting,
started again after the broker was down at start-up, and run again after a clean stop.

"Down" and "slow to answer" are a `BrokerGate` in front of the shared broker (see
tests/broker_gate.py), so these tests need no outage lock; the real broker stopped and
started is `tests/failures/test_broker_outage.py::test_listener_starts_once_the_broker_is_back`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends.base import Subscription
from dispytch.errors import BrokerUnavailableError
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer
from tests.broker_gate import BrokerGate

from .conftest import Names, eventually

pytestmark = pytest.mark.rabbitmq

PROMPT = 10.0


class Body(BaseModel):
    n: int


class Ping(EventBase):
    __topic__ = "t"
    __event_type__ = "e"
    n: int


def through(gate: BrokerGate, url: str) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{gate.address}" if credentials else gate.address
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def gate(rabbitmq_url: str) -> AsyncIterator[BrokerGate]:
    target = urlsplit(rabbitmq_url)
    opened = BrokerGate(target.hostname or "127.0.0.1", target.port or 5672)
    yield opened
    await opened.shut()


class Setup:
    def __init__(self, url: str, names: Names) -> None:
        self.url = url
        self.exchange = names.topology().exchange
        self.group = names.group("g")
        self.queue = f"{self.exchange}.{self.group}"
        self.handled: list[int] = []

    def listener(self, url: str, **options: float) -> EventListener:
        consumer = RabbitMQConsumer.create(
            url, self.group, exchange=self.exchange, connect_timeout=60, reconnect_interval=0.2
        )
        listener = EventListener(consumer, **options)  # type: ignore[arg-type]

        @listener.handler(topic="t", event="e")
        async def handler(event: Event[Body]) -> None:
            self.handled.append(event.body.n)

        return listener

    async def emit(self, n: int) -> None:
        producer = RabbitMQProducer.create(self.url, exchange=self.exchange)
        try:
            await EventEmitter(producer).emit(Ping(n=n), timeout=PROMPT)
        finally:
            await producer.close()

    async def declare(self) -> None:
        """The group's queue and binding, as a first run of the service left them."""
        consumer = RabbitMQConsumer.create(self.url, self.group, exchange=self.exchange)
        await consumer.start([Subscription.parse("t", ":")])
        await consumer.close()

    async def waiting(self, admin: object) -> int:
        queue = await admin.declare_queue(self.queue, passive=True)  # type: ignore[attr-defined]
        count: int = queue.declaration_result.message_count
        return count


async def test_stop_while_connecting_returns_and_nothing_is_consumed(
    rabbitmq_url: str, names: Names, gate: BrokerGate, admin: object
) -> None:
    setup = Setup(rabbitmq_url, names)
    await setup.declare()
    await setup.emit(1)
    await gate.hold()  # the broker does not answer yet
    listener = setup.listener(through(gate, rabbitmq_url))
    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await eventually(lambda: _true(gate.accepted > 0), PROMPT)

    stopping = asyncio.create_task(listener.stop())
    await asyncio.sleep(0)
    await gate.open()  # ... and answers once the stop was asked for

    await asyncio.wait_for(stopping, PROMPT)
    await asyncio.wait_for(listening, PROMPT)
    assert not listener.running
    await eventually(lambda: _true(gate.open_connections == 0), PROMPT)  # it gave up
    assert await setup.waiting(admin) == 1
    assert setup.handled == []


async def test_async_with_given_up_while_connecting_leaves_nothing_running(
    rabbitmq_url: str, names: Names, gate: BrokerGate, admin: object
) -> None:
    setup = Setup(rabbitmq_url, names)
    await setup.declare()
    await setup.emit(1)
    await gate.hold()
    listener = setup.listener(through(gate, rabbitmq_url))

    async def enter() -> None:
        async with listener:
            await asyncio.Event().wait()  # pragma: no cover - the entry never completes

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(enter(), 0.5)
    await gate.open()

    assert not listener.running
    await eventually(lambda: _true(gate.open_connections == 0), PROMPT)
    assert await setup.waiting(admin) == 1
    assert setup.handled == []


async def test_cancelling_listen_while_connecting_leaves_no_connection_behind(
    rabbitmq_url: str, names: Names, gate: BrokerGate
) -> None:
    setup = Setup(rabbitmq_url, names)
    await gate.hold()
    listener = setup.listener(through(gate, rabbitmq_url))
    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await eventually(lambda: _true(gate.accepted > 0), PROMPT)

    listening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(listening, PROMPT)
    await gate.open()  # a connection attempt still going on would complete now

    assert not listener.running
    await eventually(lambda: _true(gate.open_connections == 0), PROMPT)


async def test_listen_again_once_the_broker_that_was_down_answers(
    rabbitmq_url: str, names: Names, gate: BrokerGate
) -> None:
    setup = Setup(rabbitmq_url, names)
    listener = setup.listener(through(gate, rabbitmq_url))  # the gate is shut: nothing listens
    with pytest.raises(BrokerUnavailableError):
        await asyncio.wait_for(listener.listen(handle_signals=False), PROMPT)
    assert not listener.running

    await gate.open()
    async with listener:  # the same listener, as a boot loop retries it
        await setup.emit(1)
        await eventually(lambda: _true(setup.handled == [1]), PROMPT)


async def test_a_listener_runs_again_after_a_clean_stop(rabbitmq_url: str, names: Names) -> None:
    setup = Setup(rabbitmq_url, names)
    listener = setup.listener(rabbitmq_url)
    for n in range(2):
        async with listener:
            await setup.emit(n)
            await eventually(lambda n=n: _true(setup.handled[-1:] == [n]), PROMPT)
    assert setup.handled == [0, 1]


async def _true(condition: bool) -> bool | None:
    return True if condition else None
