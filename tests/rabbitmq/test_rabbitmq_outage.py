"""The broker going away under a running consumer and producer: a REAL restart of RabbitMQ.

These tests stop and start the local node's RabbitMQ application with rabbitmqctl, so they
need the broker on this machine (they skip when DISPYTCH_RABBITMQ_URL names another host).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.backends.base import Delivery, OutgoingMessage, Subscription
from dispytch.errors import BrokerUnavailableError, EmitTimeoutError, ProducerError
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer

from .conftest import RABBITMQ_URL, Names, aio_pika

pytestmark = pytest.mark.rabbitmq


BROKERS_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "brokers"


async def whole_node(action: str) -> None:
    """Stop or start the whole RabbitMQ node with scripts/brokers (not only the app)."""
    process = await asyncio.create_subprocess_exec(
        str(BROKERS_SCRIPT), action, "rabbitmq", stdout=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(process.wait(), 240) == 0, f"scripts/brokers {action} failed"


async def rabbitmqctl(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", *args, stdout=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(process.wait(), 120) == 0, f"rabbitmqctl {args} failed"


@pytest.fixture
async def local_broker(rabbitmq_url: str) -> AsyncIterator[None]:
    local = "@127.0.0.1" in RABBITMQ_URL or "@localhost" in RABBITMQ_URL
    if not local or shutil.which("rabbitmqctl") is None:
        message = "needs rabbitmqctl and the broker on this machine"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    yield
    # whatever happened, leave the broker running and without alarms
    await rabbitmqctl("start_app")
    await rabbitmqctl("set_vm_memory_high_watermark", "0.4")


async def test_send_times_out_while_the_broker_blocks_publishers(
    local_broker: None, names: Names
) -> None:
    consumer = RabbitMQConsumer.create(
        RABBITMQ_URL, names.group("g"), exchange=names.topology().exchange
    )
    await consumer.start([Subscription.parse("t", ":")])
    producer = RabbitMQProducer.create(RABBITMQ_URL, exchange=names.topology().exchange)
    try:
        await producer.send(OutgoingMessage("t", b"before"), timeout=5)
        await rabbitmqctl("set_vm_memory_high_watermark", "0")  # memory alarm: publishers block
        started = time.monotonic()
        with pytest.raises(EmitTimeoutError):
            await producer.send(OutgoingMessage("t", b"blocked"), timeout=1)
        assert time.monotonic() - started < 3
    finally:
        await rabbitmqctl("set_vm_memory_high_watermark", "0.4")
        await producer.close()
        await consumer.close()


async def test_consumer_resumes_after_a_broker_restart_and_nothing_is_lost(
    local_broker: None, names: Names
) -> None:
    exchange = names.topology().exchange
    consumer = RabbitMQConsumer.create(
        RABBITMQ_URL, names.group("g"), exchange=exchange, reconnect_interval=0.5
    )
    await consumer.start([Subscription.parse("orders:{id}", ":")])
    producer = RabbitMQProducer.create(RABBITMQ_URL, exchange=exchange, reconnect_interval=0.5)
    acked: set[bytes] = set()
    held: list[Delivery] = []
    hold = asyncio.Event()
    hold.set()

    async def handle() -> None:
        while True:
            delivery = await consumer.receive()
            if hold.is_set() and len(held) < 5 and delivery.value.startswith(b"before"):
                held.append(delivery)  # in flight when the broker goes away
                continue
            await delivery.ack()
            acked.add(delivery.value)

    async def wait_for(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"acked {len(acked)}: {sorted(acked)}"
            await asyncio.sleep(0.05)

    task = asyncio.create_task(handle())
    try:
        before = [f"before-{i}".encode() for i in range(20)]
        await producer.send_many(
            [OutgoingMessage(f"orders:{i}", v) for i, v in enumerate(before)], timeout=5
        )
        await wait_for(lambda: len(acked) == 15 and len(held) == 5, 10)

        await rabbitmqctl("stop_app")
        hold.clear()
        for delivery in held:  # their channel is gone: the ack is dropped, not raised
            await delivery.ack()
        started = time.monotonic()
        with pytest.raises((BrokerUnavailableError, EmitTimeoutError)):
            await producer.send(OutgoingMessage("orders:x", b"during"), timeout=1)
        assert time.monotonic() - started < 3
        await rabbitmqctl("start_app")

        after = [f"after-{i}".encode() for i in range(20)]
        for i, value in enumerate(after):
            deadline = time.monotonic() + 30
            while True:  # the producer reconnects by itself; the caller retries what failed
                try:
                    await producer.send(OutgoingMessage(f"orders:{i}", value), timeout=2)
                    break
                except (BrokerUnavailableError, ProducerError):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
        await wait_for(lambda: acked >= set(before) | set(after), 30)
        assert b"during" not in acked
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.close()
        await consumer.close()


def _consumer_channel_closed(consumer: RabbitMQConsumer) -> bool:
    return all(queue.channel.is_closed for queue in consumer._queues)


@pytest.mark.parametrize("outage", ["close_all_connections", "stop_app", "node_restart"])
async def test_a_listener_stopped_during_an_outage_takes_no_delivery_once_the_broker_is_back(
    local_broker: None, names: Names, outage: str
) -> None:
    """Stopping while the connection is down: the robust connection comes back during the
    drain, but no consumer is restored, so nothing is requeued in a loop and a quorum queue
    with a delivery limit drops nothing."""
    topology = names.topology()
    queue_arguments = {"x-queue-type": "quorum", "x-delivery-limit": 3}
    consumer = RabbitMQConsumer.create(
        RABBITMQ_URL,
        names.group("g"),
        exchange=topology.exchange,
        queue_arguments=queue_arguments,
        reconnect_interval=3,  # time to see the channel closed before it comes back
    )
    listener = EventListener(consumer, max_concurrency=1, shutdown_grace=60, close_timeout=5)
    started = asyncio.Event()
    release = asyncio.Event()

    @listener.handler(topic="t", event="e")
    async def slow(event: Event[dict[str, Any]]) -> None:
        started.set()
        await asyncio.wait_for(release.wait(), 60)

    values = [
        json.dumps({"id": f"e-{i}", "type": "e", "body": {}, "timestamp": 0}).encode()
        for i in range(5)
    ]
    stopping: asyncio.Task[None] | None = None
    async with listener:
        try:
            producer = RabbitMQProducer.create(RABBITMQ_URL, exchange=topology.exchange)
            try:
                await producer.send_many([OutgoingMessage("t", v) for v in values], timeout=5)
            finally:
                await producer.close()
            await asyncio.wait_for(started.wait(), 10)  # e-0 in flight, the others wait

            if outage == "close_all_connections":
                await rabbitmqctl("close_all_connections", "outage test")
            elif outage == "stop_app":
                await rabbitmqctl("stop_app")
            else:
                await whole_node("stop")
            await eventually_true(lambda: _consumer_channel_closed(consumer), 10)
            stopping = asyncio.create_task(listener.stop())  # drains: e-0's handler runs
            await asyncio.sleep(0)
            if outage == "stop_app":
                await rabbitmqctl("start_app")
            elif outage == "node_restart":
                await whole_node("start")
            # the robust connection comes back while the listener drains; before the fix its
            # consumer came back too and requeued every delivery at once, over and over
            await eventually_true(lambda: not _consumer_channel_closed(consumer), 60)
            await asyncio.sleep(2)  # the window in which the requeue loop used to run
            release.set()
            await asyncio.wait_for(stopping, 30)
        finally:
            release.set()
            if stopping is not None:
                await asyncio.gather(stopping, return_exceptions=True)
            if outage == "node_restart":
                await whole_node("start")  # a no-op when it is up; the fixture cannot

    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)  # the outage closed others
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.queue("g"))
        taken: list[Any] = []
        deadline = time.monotonic() + 5
        while len(taken) < len(values) and time.monotonic() < deadline:
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.1)
            else:
                taken.append(message)
    finally:
        await connection.close()
    assert sorted(m.body for m in taken) == sorted(values)  # nothing dropped
    counts = {m.body: int((m.headers or {}).get("x-delivery-count", 0)) for m in taken}
    # e-0 came back once (its connection went away); nobody took the others
    assert max(counts.values()) <= 1, counts


async def eventually_true(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout}s"
        await asyncio.sleep(0.05)
