"""The emitter on the real RabbitMQ: topic values, event loops, emit_many outcomes, close."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest

from dispytch import EventBase, EventEmitter
from dispytch.backends.base import Subscription
from dispytch.errors import (
    EmitError,
    EmitTimeoutError,
    ProducerError,
    TopicFormatError,
    UnroutableMessageError,
)
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer

from .conftest import Names, aio_pika

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


class Ping(EventBase):
    __topic__ = "pings"
    __event_type__ = "ping"
    n: int


# aio-pika reports, when each asyncio.run() ends, the connection left open in it: that is the
# situation under test (an emitter carried from one loop to the next), not a failure
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_emitter_with_its_own_connection_works_in_a_second_event_loop(
    rabbitmq_url: str, names: Names
) -> None:
    async def bind_queue() -> None:
        consumer = await started_consumer(rabbitmq_url, names, "pings")
        await consumer.close()  # the durable queue stays bound and keeps what arrives

    asyncio.run(bind_queue())
    emitter = EventEmitter(producer_for(rabbitmq_url, names))
    asyncio.run(emitter.emit(Ping(n=1)))
    asyncio.run(emitter.emit(Ping(n=2)))  # before: "did not come back" after the whole timeout
    asyncio.run(emitter.emit_many([Ping(n=3)]))
    asyncio.run(emitter.close())  # before: "Event loop is closed"

    async def received() -> list[int]:
        consumer = await started_consumer(rabbitmq_url, names, "pings")
        try:
            seen = []
            for _ in range(3):
                delivery = await asyncio.wait_for(consumer.receive(), 10)
                seen.append(json.loads(delivery.value)["body"]["n"])
                await delivery.ack()
            return sorted(seen)
        finally:
            await consumer.close()

    assert asyncio.run(received()) == [1, 2, 3]
    gc.collect()  # the abandoned connections' leftovers are reported here, under the filter


def test_exchanges_from_another_loop_are_refused_at_once(rabbitmq_url: str, names: Names) -> None:
    exchange_name = names.exchange("wrapped")

    async def first_loop() -> EventEmitter:
        connection = await aio_pika.connect(rabbitmq_url, timeout=10)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(exchange_name, "topic", auto_delete=True)
        emitter = EventEmitter(RabbitMQProducer(exchange, mandatory=False), timeout=10)
        await emitter.emit(Ping(n=1))
        await connection.close()  # the caller's own connection, closed with its loop
        return emitter

    emitter = asyncio.run(first_loop())
    calls: list[EventBase] = []
    emitter.on_timeout(calls.append)
    with pytest.raises(ProducerError, match="another event loop") as caught:
        asyncio.run(emitter.emit(Ping(n=2)))
    assert not isinstance(caught.value, EmitTimeoutError)
    assert calls == []
    with pytest.raises(ProducerError, match="another event loop"):
        asyncio.run(emitter.emit_many([Ping(n=3)]))
    asyncio.run(emitter.close())


class Lost(EventBase):
    __topic__ = "nowhere"
    __event_type__ = "ping"
    n: int


async def test_a_partial_emit_many_says_which_events_were_confirmed(
    rabbitmq_url: str, names: Names
) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "pings")
    emitter = EventEmitter(producer_for(rabbitmq_url, names))  # mandatory: unroutable raises
    first, lost, last = Ping(n=1), Lost(n=2), Ping(n=3)
    try:
        with pytest.raises(UnroutableMessageError) as caught:
            await emitter.emit_many([first, lost, last])
        assert caught.value.confirmed == (first, last)
        assert caught.value.unconfirmed == (lost,)
        seen = []
        for _ in range(2):
            delivery = await asyncio.wait_for(consumer.receive(), 10)
            seen.append(json.loads(delivery.value)["body"]["n"])
            await delivery.ack()
        assert sorted(seen) == [1, 3]
    finally:
        await emitter.close()
        await consumer.close()


async def test_emit_after_close_is_refused_with_a_clear_error(
    rabbitmq_url: str, names: Names
) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "pings")
    emitter = EventEmitter(producer_for(rabbitmq_url, names))
    try:
        await emitter.emit(Ping(n=1))
        await emitter.close()
        with pytest.raises(EmitError, match="closed"):  # before: connected again, sent anyway
            await emitter.emit(Ping(n=2))
        with pytest.raises(EmitError, match="closed"):
            await emitter.emit_many([Ping(n=3)])
        delivery = await asyncio.wait_for(consumer.receive(), 10)
        assert json.loads(delivery.value)["body"]["n"] == 1
        await delivery.ack()
    finally:
        await emitter.close()
        await consumer.close()
