"""A delayed retry that RabbitMQ refuses to park is given back, not also retried in place."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.backends.base import OutgoingMessage
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer
from dispytch.rabbitmq.topology import delay_queue_name

from .conftest import Names, eventually

pytestmark = pytest.mark.rabbitmq


async def test_a_failed_hand_back_is_given_back_not_retried_in_place(
    rabbitmq_url: str, names: Names, admin: Any
) -> None:
    topology = names.topology()
    group_queue = topology.queue(names.group("g"))
    # a queue of the delay queue's name with other arguments: declaring it fails, so the
    # copy cannot be parked until it is deleted
    blocker = delay_queue_name(group_queue, 200)
    names.queues.add(blocker)
    await admin.declare_queue(blocker, durable=True)
    consumer = RabbitMQConsumer.create(rabbitmq_url, "g", exchange=topology.exchange)
    listener = EventListener(consumer)
    attempts: list[int] = []

    @listener.handler(
        topic="jobs", event="job", retries=3, retry_interval=0.2, delayed_retries=True
    )
    async def handle(event: Event[dict[str, Any]]) -> None:
        attempts.append(event.attempt)
        if event.attempt == 1:
            raise RuntimeError("first attempt fails")

    async with listener:
        producer = RabbitMQProducer.create(rabbitmq_url, exchange=topology.exchange)
        await producer.start()
        try:
            value = json.dumps({"id": str(uuid.uuid4()), "type": "job", "body": {}}).encode()
            await producer.send(OutgoingMessage("jobs", value), timeout=5)
        finally:
            await producer.close()

        async def given_back_twice() -> bool | None:
            assert 2 not in attempts, f"retried in place: {attempts}"
            return True if attempts.count(1) >= 3 else None

        await eventually(given_back_twice, timeout=15)
        await admin.queue_delete(blocker)

        async def retried() -> bool | None:
            return True if 2 in attempts else None

        await eventually(retried, timeout=15)
    assert attempts.count(2) == 1
