"""The emitter on the real RabbitMQ: topic values, event loops, emit_many outcomes, close."""

from __future__ import annotations

import asyncio

import pytest

from dispytch import EventBase, EventEmitter
from dispytch.backends.base import Subscription
from dispytch.errors import TopicFormatError
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer

from .conftest import Names

pytestmark = pytest.mark.rabbitmq


class Visit(EventBase):
    __topic__ = "visits:{city}"
    __event_type__ = "visit"
    city: str


async def started_consumer(url: str, names: Names, *patterns: str) -> RabbitMQConsumer:
    consumer = RabbitMQConsumer.create(
        url, names.group("g"), exchange=names.topology().exchange
    )
    await consumer.start([Subscription.parse(p, ":") for p in patterns])
    return consumer


def producer_for(url: str, names: Names) -> RabbitMQProducer:
    return RabbitMQProducer.create(url, exchange=names.topology().exchange, timeout=10)


async def test_empty_topic_value_is_refused_before_it_reaches_the_broker(
    rabbitmq_url: str, names: Names
) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "visits:{city}")
    emitter = EventEmitter(producer_for(rabbitmq_url, names))
    try:
        with pytest.raises(TopicFormatError, match="empty"):
            await emitter.emit(Visit(city=""))  # routing key "visits." matches "visits.*"
        await emitter.emit(Visit(city="oslo"))
        delivery = await asyncio.wait_for(consumer.receive(), 10)
        assert delivery.topic == "visits:oslo"  # the first message the queue got
        await delivery.ack()
    finally:
        await emitter.close()
        await consumer.close()
