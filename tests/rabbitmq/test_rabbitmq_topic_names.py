"""A topic whose routing key RabbitMQ cannot carry (over 255 bytes) fails at once, naming the
rule, and nothing is sent."""

from __future__ import annotations

import asyncio

import pytest

from dispytch.backends.base import OutgoingMessage
from dispytch.errors import InvalidTopicNameError
from dispytch.rabbitmq import RabbitMQProducer

from .conftest import Names

pytestmark = pytest.mark.rabbitmq


async def test_a_routing_key_over_255_bytes_is_refused_at_once(
    rabbitmq_url: str, names: Names
) -> None:
    producer = RabbitMQProducer.create(rabbitmq_url, exchange=names.exchange("topics"))
    try:
        with pytest.raises(InvalidTopicNameError) as refused:
            await asyncio.wait_for(producer.send(OutgoingMessage("o" * 256, b"x")), 10)
        assert "255 bytes" in str(refused.value)
        with pytest.raises(InvalidTopicNameError):
            await asyncio.wait_for(
                producer.send_many([OutgoingMessage("ok", b"x"), OutgoingMessage("é" * 128, b"")]),
                10,
            )
        producer.check_topic("o" * 255)  # the limit itself is fine
    finally:
        await producer.close()
