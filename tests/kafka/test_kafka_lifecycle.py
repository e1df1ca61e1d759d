"""The listener's lifecycle on the real broker: stopped or given up while still connecting,
started again after the broker was down at start-up, and run again after a clean stop.

"Down" and "slow to answer" are a `BrokerGate` in front of the shared broker's bootstrap
address (see tests/broker_gate.py), so these tests need no outage lock; the real broker stopped
and started is `tests/failures/test_broker_outage.py::test_listener_starts_once_the_broker_is_back`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel

from dispytch import Event, EventListener
from dispytch.backends.base import Subscription
from dispytch.errors import BrokerUnavailableError, ConsumerStoppedError
from dispytch.kafka import KafkaConsumer
from tests.broker_gate import BrokerGate
from tests.core.helpers import envelope

from .conftest import NewTopicFactory
from .kafka_helpers import eventually, group_name, produce

pytestmark = pytest.mark.kafka

PROMPT = 20.0


class Body(BaseModel):
    n: int


@pytest.fixture
async def gate(bootstrap: str) -> AsyncIterator[BrokerGate]:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    opened = BrokerGate(host or "127.0.0.1", int(port))
    yield opened
    await opened.shut()


class Setup:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group_name()
        self.handled: list[int] = []

    def listener(self, servers: str, **options: float) -> EventListener:
        consumer = KafkaConsumer.create(servers, self.group, request_timeout_ms=60_000)
        listener = EventListener(consumer, **options)  # type: ignore[arg-type]

        @listener.handler(topic=self.topic, event="e")
        async def handler(event: Event[Body]) -> None:
            self.handled.append(event.body.n)

        return listener

    async def emit(self, n: int) -> None:
        await produce(self.bootstrap, self.topic, [envelope("e", {"n": n})])

    async def committed(self) -> dict[object, object]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets: dict[object, object] = await admin.list_consumer_group_offsets(self.group)
            return offsets
        finally:
            await admin.close()


async def test_stop_while_connecting_returns_and_nothing_is_consumed(
    bootstrap: str, new_topic: NewTopicFactory, gate: BrokerGate
) -> None:
    setup = Setup(bootstrap, await new_topic())
    await setup.emit(1)
    await gate.hold()  # the broker does not answer yet
    listener = setup.listener(gate.address, close_timeout=5)
    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await eventually(lambda: _now(gate.accepted > 0), timeout=PROMPT, what="a connection")

    stopping = asyncio.create_task(listener.stop())
    await asyncio.sleep(0)
    await gate.open()  # ... and answers once the stop was asked for

    await asyncio.wait_for(stopping, PROMPT)
    await asyncio.wait_for(listening, PROMPT)
    assert not listener.running
    await eventually(lambda: _now(gate.open_connections == 0), timeout=PROMPT, what="gave up")
    assert setup.handled == []
    assert await setup.committed() == {}


async def test_async_with_given_up_while_connecting_leaves_nothing_running(
    bootstrap: str, new_topic: NewTopicFactory, gate: BrokerGate
) -> None:
    setup = Setup(bootstrap, await new_topic())
    await setup.emit(1)
    await gate.hold()
    listener = setup.listener(gate.address, close_timeout=5)

    async def enter() -> None:
        async with listener:
            await asyncio.Event().wait()  # pragma: no cover - the entry never completes

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(enter(), 0.5)
    await gate.open()

    assert not listener.running
    await eventually(lambda: _now(gate.open_connections == 0), timeout=PROMPT, what="gave up")
    assert setup.handled == []
    assert await setup.committed() == {}


async def test_listen_again_once_the_broker_that_was_down_answers(
    bootstrap: str, new_topic: NewTopicFactory, gate: BrokerGate
) -> None:
    setup = Setup(bootstrap, await new_topic())
    listener = setup.listener(gate.address)  # the gate is shut: nothing listens
    with pytest.raises(BrokerUnavailableError):
        await asyncio.wait_for(listener.listen(handle_signals=False), PROMPT)
    assert not listener.running

    await gate.open()
    await setup.emit(1)
    async with listener:  # the same listener, as a boot loop retries it
        await eventually(lambda: _now(setup.handled == [1]), timeout=PROMPT, what="event 1")


async def test_a_listener_runs_again_after_a_clean_stop(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    setup = Setup(bootstrap, await new_topic())
    listener = setup.listener(bootstrap)
    for n in range(2):
        await setup.emit(n)
        async with listener:
            await eventually(lambda n=n: _now(n in setup.handled), timeout=PROMPT, what=f"{n}")
    assert setup.handled == [0, 1]  # the second run starts after what the first committed


async def test_a_wrapped_client_that_dispytch_stopped_is_refused_clearly(
    gate: BrokerGate,
) -> None:
    """aiokafka clients cannot start twice: the error says what to do instead."""
    client = AIOKafkaConsumer(
        bootstrap_servers=gate.address, group_id=group_name(), enable_auto_commit=False
    )
    consumer = KafkaConsumer(client, create_retry_topic=False)
    with pytest.raises(BrokerUnavailableError):
        await consumer.start([Subscription.parse("t", ".")])
    await consumer.close()
    with pytest.raises(ConsumerStoppedError, match=r"KafkaConsumer\.create\(\)"):
        await consumer.start([Subscription.parse("t", ".")])


async def _now(condition: bool) -> bool:
    return condition
