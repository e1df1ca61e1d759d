"""In-memory broker specifics that the conformance suite does not cover."""

import asyncio
import gc
import tracemalloc

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.backends.base import OutgoingMessage, Subscription
from dispytch.errors import ConsumerStoppedError, MessageTooLargeError
from tests.core.helpers import wait_until


class Body(BaseModel):
    n: int


class Ping(EventBase):
    __topic__ = "t"
    __event_type__ = "e"
    n: int


async def send(broker: InMemoryBroker, topic: str, value: bytes) -> None:
    producer = broker.producer()
    await producer.start()
    await producer.send(OutgoingMessage(topic=topic, value=value))


async def test_backlog_is_kept_for_the_first_group() -> None:
    broker = InMemoryBroker()
    emitter = EventEmitter(broker.producer())
    await emitter.emit(Ping(n=1))
    await emitter.emit(Ping(n=2))
    assert broker.backlog("t") == 2
    assert broker.pending("g") == 0

    listener = EventListener(broker.consumer("g"))
    seen: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        seen.append(event.body.n)

    async with listener:
        await wait_until(lambda: sorted(seen) == [1, 2])
        await wait_until(lambda: broker.pending("g") == 0)
    assert broker.backlog("t") == 0


async def test_pending_counts_unsettled_messages() -> None:
    broker = InMemoryBroker()
    assert broker.pending("nobody") == 0
    consumer = broker.consumer("g", ["t"])
    await consumer.start([])
    for n in range(3):
        await send(broker, "t", b"%d" % n)
    assert broker.pending("g") == 3
    first = await consumer.receive()
    assert broker.pending("g") == 3  # received is not settled
    await first.ack()
    assert broker.pending("g") == 2
    second = await consumer.receive()
    await second.nack()
    assert broker.pending("g") == 2  # back in line
    await consumer.close()


async def test_close_puts_unsettled_messages_back_in_receive_order() -> None:
    broker = InMemoryBroker()
    consumer = broker.consumer("g", ["t"])
    await consumer.start([])
    for n in range(5):
        await send(broker, "t", b"m%d" % n)
    received = [await consumer.receive() for _ in range(3)]
    assert [d.value for d in received] == [b"m0", b"m1", b"m2"]
    await received[1].ack()
    await consumer.close()
    assert broker.pending("g") == 4
    with pytest.raises(ConsumerStoppedError):
        await consumer.receive()

    late_ack = received[0]
    await late_ack.ack()  # after close: ignored, the message already went back
    assert broker.pending("g") == 4

    again = broker.consumer("g", ["t"])
    await again.start([])
    values = [(await again.receive()).value for _ in range(4)]
    assert values == [b"m0", b"m2", b"m3", b"m4"]
    await again.close()


async def test_max_message_bytes() -> None:
    broker = InMemoryBroker(max_message_bytes=64)
    await send(broker, "t", b"x" * 64)
    with pytest.raises(MessageTooLargeError):
        await send(broker, "t", b"x" * 65)
    with pytest.raises(MessageTooLargeError):
        await EventEmitter(broker.producer()).emit(Ping(n=1))
    assert broker.backlog("t") == 1


async def test_second_ack_is_ignored() -> None:
    broker = InMemoryBroker()
    consumer = broker.consumer("g", ["t"])
    await consumer.start([])
    await send(broker, "t", b"a")
    await send(broker, "t", b"b")
    delivery = await consumer.receive()
    await delivery.ack()
    await delivery.ack()
    await delivery.nack()
    assert broker.pending("g") == 1  # "b" is still there: the extra settles changed nothing
    other = await asyncio.wait_for(consumer.receive(), 1)
    assert other.value == b"b"
    await other.ack()
    assert broker.pending("g") == 0
    await consumer.close()


async def test_consumer_without_topics_uses_the_listener_subscriptions() -> None:
    broker = InMemoryBroker()
    consumer = broker.consumer("g")
    await consumer.start([Subscription.parse("users:*", ":")])
    await send(broker, "users:1", b"x")
    await send(broker, "orders:1", b"y")
    delivery = await asyncio.wait_for(consumer.receive(), 1)
    assert (delivery.topic, delivery.value) == ("users:1", b"x")
    assert broker.backlog("orders:1") == 1
    await consumer.close()


async def test_memory_stays_flat_with_many_distinct_topics_once_settled() -> None:
    """Per-entity topics (`visits:<id>`) must not leave a route behind per topic forever."""
    broker = InMemoryBroker()
    consumer = broker.consumer("g", ["visits:*"])
    await consumer.start([])
    producer = broker.producer()

    async def emit_and_settle(first: int, count: int) -> None:
        for n in range(first, first + count):
            await producer.send(OutgoingMessage(topic=f"visits:{n}", value=b"x"))
            await (await consumer.receive()).ack()
        assert broker.pending("g") == 0

    tracemalloc.start()
    try:
        await emit_and_settle(0, 2_000)  # warm up: caches and free lists reach their size
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        await emit_and_settle(2_000, 20_000)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await consumer.close()
    # one route kept per topic costs ~140 bytes plus the topic string: ~4 MB for 20,000 topics
    assert after - before < 500_000, f"grew by {after - before} bytes"


async def test_receive_many_takes_what_is_ready_in_order_up_to_the_limit() -> None:
    broker = InMemoryBroker()
    consumer = broker.consumer("g", topics=["t"])
    await consumer.start([])
    for n in range(5):
        broker.publish(OutgoingMessage("t", str(n).encode()))
    first = await consumer.receive_many(3)
    rest = await consumer.receive_many(10)
    assert [d.value for d in first] == [b"0", b"1", b"2"]
    assert [d.value for d in rest] == [b"3", b"4"]
    assert broker.pending("g") == 5  # taken, not settled
    for delivery in first + rest:
        assert delivery.metadata["deliveries"] == 1
        await delivery.ack()
    assert broker.pending("g") == 0
    await consumer.close()
