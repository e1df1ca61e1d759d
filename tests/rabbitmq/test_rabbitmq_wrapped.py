"""Dispytch 0.10 style: the user's own aio-pika exchanges and queues, wrapped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from dispytch.backends.base import OutgoingMessage, Subscription
from dispytch.errors import ProducerError, UnroutableMessageError
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQEventConfig, RabbitMQProducer
from dispytch.reasons import DeadLetterReason, dead_letter_headers

from .conftest import Names, get_messages

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def channel(rabbitmq_url: str) -> AsyncIterator[Any]:
    connection = await aio_pika.connect_robust(rabbitmq_url, timeout=10)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def test_user_declared_exchange_and_queue(channel: Any, names: Names) -> None:
    exchange = await channel.declare_exchange(names.exchange("events"), "direct", durable=True)
    queue = await channel.declare_queue(names.queue("users"), durable=True)
    await queue.bind(exchange, "user_events")
    dlq = names.queue("dlq")
    consumer = RabbitMQConsumer(
        queue, prefetch=10, dead_letter_exchange=names.exchange("dlx"), dead_letter_queue=dlq
    )
    producer = RabbitMQProducer(exchange, timeout=5)
    await consumer.start([Subscription.parse("ignored", ":")])
    try:
        await producer.send(OutgoingMessage("user_events", b"v1", headers={"a": "b"}))
        delivery = await asyncio.wait_for(consumer.receive(), 10)
        # 0.10: the topic is the routing key, published unchanged
        assert (delivery.topic, delivery.value, delivery.headers) == (
            "user_events",
            b"v1",
            {"a": "b"},
        )
        assert delivery.metadata["exchange"] == exchange.name
        reason = DeadLetterReason("decode", "EnvelopeError", "not json", "user_events")
        await delivery.dead_letter(dead_letter_headers(delivery.headers, reason))
        [dead] = await get_messages(channel, dlq, 1)
        assert dead.body == b"v1"
        assert dead.headers["dispytch-dlq-group"] == queue.name
        assert dead.headers["dispytch-dlq-stage"] == "decode"
    finally:
        await consumer.close()
    assert queue.channel.is_closed is False, "the user's channel stays open"


async def test_exchange_chosen_by_config(channel: Any, names: Names) -> None:
    first = await channel.declare_exchange(names.exchange("first"), "topic", auto_delete=True)
    second = await channel.declare_exchange(names.exchange("second"), "topic", auto_delete=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(second, "#")
    producer = RabbitMQProducer([first, second])
    with pytest.raises(ProducerError, match="several exchanges"):
        await producer.send(OutgoingMessage("t", b"x"))
    with pytest.raises(ProducerError, match="no exchange 'missing'"):
        await producer.send(
            OutgoingMessage("t", b"x", config=RabbitMQEventConfig(exchange="missing"))
        )
    with pytest.raises(UnroutableMessageError):
        await producer.send(
            OutgoingMessage("t", b"x", config=RabbitMQEventConfig(exchange=first.name))
        )
    await producer.send(
        OutgoingMessage("t", b"y", config=RabbitMQEventConfig(exchange=second.name))
    )
    [message] = await get_messages(channel, queue.name, 1)
    assert (message.body, message.routing_key) == (b"y", "t")
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    await producer.close()  # the user's exchanges stay usable
    await second.publish(aio_pika.Message(b"z"), "t")


async def test_unconfirmed_dead_letter_leaves_the_message_unsettled(
    rabbitmq_url: str, channel: Any, names: Names
) -> None:
    """No queue behind the dead-letter exchange: the publish is returned, so no ack."""
    queue = await channel.declare_queue(names.queue("work"), durable=True)
    consumer = RabbitMQConsumer(
        queue, dead_letter_exchange=names.exchange("dlx"), dead_letter_queue=None
    )
    await consumer.start([])
    try:
        await channel.default_exchange.publish(aio_pika.Message(b"poison"), queue.name)
        delivery = await asyncio.wait_for(consumer.receive(), 10)
        with pytest.raises(UnroutableMessageError):
            await delivery.dead_letter(
                dead_letter_headers(
                    delivery.headers, DeadLetterReason("handler", "E", "e", queue.name)
                )
            )
    finally:
        await consumer.close()
    [again] = await get_messages(channel, queue.name, 1)
    assert again.body == b"poison"
    assert again.redelivered is True


async def test_consumer_needs_a_confirming_channel(rabbitmq_url: str, names: Names) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        plain = await connection.channel(publisher_confirms=False)
        queue = await plain.declare_queue(exclusive=True)
        with pytest.raises(ValueError, match="publisher confirms"):
            await RabbitMQConsumer(queue).start([])
    finally:
        await connection.close()


def test_missing_aio_pika_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['aio_pika'] = None\n"
        "from dispytch.rabbitmq import RabbitMQEventConfig\n"
        "RabbitMQEventConfig(priority=1)\n"
        "try:\n"
        "    from dispytch.rabbitmq import RabbitMQConsumer\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "MissingExtraError" in out.stdout
    assert "dispytch[rabbitmq]" in out.stdout


async def test_a_wrapped_consumer_starts_again_after_close(channel: Any, names: Names) -> None:
    exchange = await channel.declare_exchange(names.exchange("events"), "direct", durable=True)
    queue = await channel.declare_queue(names.queue("users"), durable=True)
    await queue.bind(exchange, "user_events")
    consumer = RabbitMQConsumer(
        queue, dead_letter_exchange=names.exchange("dlx"), dead_letter_queue=names.queue("dlq")
    )
    producer = RabbitMQProducer(exchange, timeout=5)
    for value in (b"first run", b"second run"):
        await consumer.start([Subscription.parse("ignored", ":")])
        try:
            await producer.send(OutgoingMessage("user_events", value))
            delivery = await asyncio.wait_for(consumer.receive(), 10)
            assert delivery.value == value
            await delivery.ack()
        finally:
            await consumer.close()
