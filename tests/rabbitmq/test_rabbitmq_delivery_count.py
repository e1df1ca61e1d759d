"""A quorum queue counts deliveries (`x-delivery-count`): the delivery reports it, and the core
takes it as the attempt number of a message that carries no `dispytch-attempt` header."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends.base import OutgoingMessage
from dispytch.rabbitmq import RabbitMQConsumer
from dispytch.reasons import DeadLetterReason

from .conftest import Names, get_messages
from .test_rabbitmq_backend import producer_for, receive, started_consumer

pytestmark = pytest.mark.rabbitmq

QUORUM = {"queue_arguments": {"x-queue-type": "quorum"}}


async def test_a_quorum_queue_delivery_reports_the_broker_count(
    rabbitmq_url: str, names: Names
) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "counted", **QUORUM)
    producer = producer_for(rabbitmq_url, names)
    try:
        await producer.send(OutgoingMessage("counted", b"x"), timeout=5)
        first = await receive(consumer)
        assert first.delivery_count is None  # no x-delivery-count on a first delivery
        await first.nack()
        second = await receive(consumer)
        assert second.delivery_count == 2
        await second.nack()
        third = await receive(consumer)
        assert third.delivery_count == 3
        assert third.metadata["delivery_count"] == 2  # the header itself: earlier deliveries
        await third.ack()
    finally:
        await producer.close()
        await consumer.close()


async def test_a_classic_queue_reports_no_count_even_when_a_producer_forges_one(
    rabbitmq_url: str, names: Names
) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "forged")
    producer = producer_for(rabbitmq_url, names)
    try:
        forged = {"x-delivery-count": "not a number"}
        await producer.send(OutgoingMessage("forged", b"x", headers=forged), timeout=5)
        delivery = await receive(consumer)
        assert delivery.delivery_count is None
        assert delivery.metadata["delivery_count"] is None
        await delivery.ack()
    finally:
        await producer.close()
        await consumer.close()


class Job(EventBase):
    __topic__ = "jobs"
    __event_type__ = "job"
    n: int


class Body(BaseModel):
    n: int


async def test_redeliveries_count_as_attempts_and_the_message_runs_out_of_retries(
    rabbitmq_url: str, names: Names, admin: object
) -> None:
    """A message delivered three times before without being handled (nacked twice, then given
    back by a consumer that closed holding it, as after a crash) has one attempt left of a
    handler's four."""
    producer = producer_for(rabbitmq_url, names)
    crashed = await started_consumer(rabbitmq_url, names, "g", "jobs", **QUORUM)
    try:
        await EventEmitter(producer).emit(Job(n=1))
        for _ in range(2):
            await (await receive(crashed)).nack()
        held = await receive(crashed)
        assert held.delivery_count == 3
    finally:
        await crashed.close()
    topology = names.topology()
    consumer = RabbitMQConsumer.create(
        rabbitmq_url, names.group("g"), exchange=topology.exchange, **QUORUM  # type: ignore[arg-type]
    )
    listener = EventListener(consumer)
    attempts: list[int] = []

    @listener.handler(topic="jobs", event="job", retries=3, retry_interval=0)
    async def handle(event: Event[Body]) -> None:
        attempts.append(event.attempt)
        raise RuntimeError("fails")

    try:
        async with listener:
            [dead] = await get_messages(admin, topology.dead_letter_queue, 1, timeout=20)
    finally:
        await producer.close()
    assert attempts == [4]
    reason = DeadLetterReason.from_headers({k: str(v) for k, v in dead.headers.items()})
    assert reason is not None
    assert (reason.stage, reason.attempts) == ("handler", 4)
