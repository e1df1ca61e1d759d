"""A delivery's metadata, on the real broker: read from the message when asked for, and a
header that only looks like one the broker sets (a producer may set any header) never stops
the consumer."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import pytest

from dispytch.backends.base import Subscription
from dispytch.rabbitmq import RabbitMQConsumer

from .conftest import Names

pytestmark = pytest.mark.rabbitmq


async def test_forged_broker_headers_neither_stop_the_consumer_nor_show_as_counts(
    rabbitmq_url: str, names: Names
) -> None:
    topology = names.topology()
    consumer = RabbitMQConsumer.create(rabbitmq_url, names.group("g"), exchange=topology.exchange)
    await consumer.start([Subscription.parse("orders:placed", ":")])
    connection = await aio_pika.connect(rabbitmq_url, timeout=10)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.exchange)
        forged: dict[str, Any] = {
            "x-death": [{"count": "many"}, {"count": -3}, "junk"],
            "x-delivery-count": "2",
        }
        message = aio_pika.Message(
            b"forged", headers=forged, message_id="m-1", correlation_id="c-1", priority=3
        )
        await exchange.publish(message, "orders.placed")
        delivery = await asyncio.wait_for(consumer.receive(), 10)
        assert delivery.value == b"forged"
        metadata = delivery.metadata
        # an entry without a count the broker would write counts as one dead-lettering
        assert metadata["delayed_redeliveries"] == 2
        assert metadata["delivery_count"] is None
        assert dict(metadata) == {
            "queue": topology.queue(names.group("g")),
            "exchange": topology.exchange,
            "routing_key": "orders.placed",
            "delivery_tag": metadata["delivery_tag"],
            "redelivered": False,
            "delivery_count": None,
            "delayed_redeliveries": 2,
            "message_id": "m-1",
            "correlation_id": "c-1",
            "priority": 3,
        }
        assert isinstance(metadata["delivery_tag"], int)
        with pytest.raises(KeyError):
            metadata["nothing"]
        await delivery.ack()
    finally:
        await connection.close()
        await consumer.close()
