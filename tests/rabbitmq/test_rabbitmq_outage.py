"""The broker going away under a running consumer and producer: a REAL restart of RabbitMQ.

These tests stop and start the local node's RabbitMQ application with rabbitmqctl, so they
need the broker on this machine (they skip when DISPYTCH_RABBITMQ_URL names another host).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator

import pytest

from dispytch.backends.base import Delivery, OutgoingMessage, Subscription
from dispytch.errors import BrokerUnavailableError, EmitTimeoutError, ProducerError
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer

from .conftest import RABBITMQ_URL, Names

pytestmark = pytest.mark.rabbitmq


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
