"""The RabbitMQ backend against the real broker: create() mode (Dispytch declares)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from dispytch.backends.base import OutgoingMessage, Subscription
from dispytch.errors import (
    BackendError,
    BrokerUnavailableError,
    ConsumerStoppedError,
    ProducerError,
    UnroutableMessageError,
)
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQEventConfig, RabbitMQProducer
from dispytch.reasons import DeadLetterReason, dead_letter_headers

from .conftest import Names, get_messages

pytestmark = pytest.mark.rabbitmq


def subs(*patterns: str, delimiter: str = ":") -> list[Subscription]:
    return [Subscription.parse(p, delimiter) for p in patterns]


async def started_consumer(
    url: str, names: Names, group: str, *patterns: str, **kwargs: object
) -> RabbitMQConsumer:
    topology = names.topology()
    consumer = RabbitMQConsumer.create(
        url,
        names.group(group),
        exchange=topology.exchange,
        **kwargs,  # type: ignore[arg-type]
    )
    await consumer.start(subs(*patterns))
    return consumer


def producer_for(url: str, names: Names, **kwargs: object) -> RabbitMQProducer:
    return RabbitMQProducer.create(url, exchange=names.topology().exchange, **kwargs)  # type: ignore[arg-type]


async def receive(consumer: RabbitMQConsumer, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(consumer.receive(), timeout)


async def test_round_trip_keeps_body_headers_key_and_topic(rabbitmq_url: str, names: Names) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "user:{id}:events")
    producer = producer_for(rabbitmq_url, names)
    try:
        await producer.send(
            OutgoingMessage(
                "user:42:events",
                b'{"hello": "world"}',
                key=b"user-42",
                headers={"trace": "abc", "dispytch-attempt": "1"},
                timestamp_ms=1_700_000_000_000,
            ),
            timeout=5,
        )
        delivery = await receive(consumer)
        assert delivery.topic == "user:42:events"
        assert delivery.value == b'{"hello": "world"}'
        assert delivery.key == b"user-42"
        assert delivery.headers == {"trace": "abc", "dispytch-attempt": "1"}
        assert delivery.ordering_key == b"user-42"
        assert delivery.metadata["routing_key"] == "user.42.events"
        assert delivery.metadata["queue"] == names.topology().queue("g")
        assert delivery.metadata["redelivered"] is False
        await delivery.ack()
    finally:
        await producer.close()
        await consumer.close()


async def test_wildcard_binding_routes_only_matching_topics(
    rabbitmq_url: str, names: Names
) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "user:*:created")
    producer = producer_for(rabbitmq_url, names, mandatory=False)
    try:
        await producer.send(OutgoingMessage("user:1:deleted", b"no"), timeout=5)
        await producer.send(OutgoingMessage("order:1:created", b"no"), timeout=5)
        await producer.send(OutgoingMessage("user:1:created", b"yes"), timeout=5)
        delivery = await receive(consumer)
        assert (delivery.topic, delivery.value) == ("user:1:created", b"yes")
        await delivery.ack()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consumer.receive(), 0.5)
    finally:
        await producer.close()
        await consumer.close()


async def test_binary_key_and_event_config(rabbitmq_url: str, names: Names) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "other.topic")
    producer = producer_for(rabbitmq_url, names)
    config = RabbitMQEventConfig(
        routing_key="other.topic",
        priority=3,
        correlation_id="corr",
        content_type="application/json",
        headers={"extra": "yes"},
    )
    try:
        await producer.send(
            OutgoingMessage("ignored:topic", b"v", key=b"\xff\x00", config=config), timeout=5
        )
        delivery = await receive(consumer)
        assert delivery.key == b"\xff\x00"
        # the routing key decides: a topic header that does not map to it is ignored
        assert delivery.topic == "other.topic"
        assert delivery.headers == {"extra": "yes"}
        assert delivery.metadata["correlation_id"] == "corr"
        assert delivery.metadata["priority"] == 3
        await delivery.ack()
    finally:
        await producer.close()
        await consumer.close()


async def test_a_message_without_config_is_published_as_with_the_default_config(
    rabbitmq_url: str, names: Names
) -> None:
    """The producer builds a message without an event config by a shorter call (it runs for
    every emit): what reaches the broker is what a default `RabbitMQEventConfig()` gives."""
    consumer = await started_consumer(rabbitmq_url, names, "g", "t")
    producer = producer_for(rabbitmq_url, names)
    stamp = int(time.time() * 1000)
    try:
        for config in (None, RabbitMQEventConfig()):
            message = OutgoingMessage(
                "t", b"v", None, {"h": "1"}, config=config, timestamp_ms=stamp
            )
            await producer.send(message, timeout=5)
        without, default = await receive(consumer), await receive(consumer)
        # aio-pika gives each message its own message_id (it matches returns by it)
        per_delivery = {
            "delivery_tag",
            "redelivered",
            "consumer_tag",
            "message_count",
            "message_id",
        }
        seen = [
            {k: v for k, v in d._message.info().items() if k not in per_delivery}  # type: ignore[attr-defined]
            for d in (without, default)
        ]
        assert seen[0] == seen[1]
        assert seen[0]["delivery_mode"] == 2
        assert seen[0]["timestamp"] is not None
        assert (without.headers, without.value) == (default.headers, default.value)
        for delivery in (without, default):
            await delivery.ack()
    finally:
        await producer.close()
        await consumer.close()


async def test_unacked_message_is_redelivered_after_close(rabbitmq_url: str, names: Names) -> None:
    producer = producer_for(rabbitmq_url, names)
    first = await started_consumer(rabbitmq_url, names, "g", "t")
    try:
        await producer.send(OutgoingMessage("t", b"once"), timeout=5)
        delivery = await receive(first)
        assert delivery.value == b"once"
    finally:
        await first.close()  # never acked
    second = await started_consumer(rabbitmq_url, names, "g", "t")
    try:
        again = await receive(second)
        assert again.value == b"once"
        assert again.metadata["redelivered"] is True
        await again.ack()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(second.receive(), 0.5)
    finally:
        await second.close()
        await producer.close()
    # acked: a third consumer gets nothing
    third = await started_consumer(rabbitmq_url, names, "g", "t")
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(third.receive(), 0.5)
    finally:
        await third.close()


async def test_nack_redelivers_at_once(rabbitmq_url: str, names: Names) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "t")
    producer = producer_for(rabbitmq_url, names)
    try:
        await producer.send(OutgoingMessage("t", b"again"), timeout=5)
        delivery = await receive(consumer)
        await delivery.nack()
        again = await receive(consumer)
        assert again.value == b"again"
        assert again.metadata["redelivered"] is True
        await again.ack()
    finally:
        await producer.close()
        await consumer.close()


async def test_nack_with_delay_redelivers_later_to_this_group_only(
    rabbitmq_url: str, names: Names
) -> None:
    failing = await started_consumer(rabbitmq_url, names, "failing", "a:b")
    other = await started_consumer(rabbitmq_url, names, "other", "a:b")
    names.queues.add(f"{names.topology().queue('failing')}.delay.700")
    producer = producer_for(rabbitmq_url, names)
    try:
        await producer.send(
            OutgoingMessage("a:b", b"later", key=b"k", headers={"h": "1"}), timeout=5
        )
        delivery = await receive(failing)
        await (await receive(other)).ack()
        nacked_at = time.monotonic()
        await delivery.nack(delay=0.7)
        again = await receive(failing)
        assert time.monotonic() - nacked_at >= 0.6
        assert (again.topic, again.value, again.key) == ("a:b", b"later", b"k")
        assert again.headers == {"h": "1"}
        assert again.metadata["delayed_redeliveries"] == 1
        await again.ack()
        with pytest.raises(asyncio.TimeoutError):  # the other group got it once only
            await asyncio.wait_for(other.receive(), 0.5)
    finally:
        await producer.close()
        await failing.close()
        await other.close()


async def test_every_group_gets_every_event_and_members_share(
    rabbitmq_url: str, names: Names
) -> None:
    members = [await started_consumer(rabbitmq_url, names, "shared", "t", prefetch=5) for _ in "ab"]
    solo = await started_consumer(rabbitmq_url, names, "solo", "t")
    producer = producer_for(rabbitmq_url, names)
    count = 40
    try:
        await producer.send_many(
            [OutgoingMessage("t", str(i).encode()) for i in range(count)], timeout=10
        )
        got: dict[int, list[bytes]] = {0: [], 1: []}

        async def drain(index: int) -> None:
            while True:
                delivery = await members[index].receive()
                got[index].append(delivery.value)
                await asyncio.sleep(0.005)  # a little work, so both members take some
                await delivery.ack()

        tasks = [asyncio.create_task(drain(i)) for i in (0, 1)]
        try:
            deadline = time.monotonic() + 10
            while len(got[0]) + len(got[1]) < count and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert sorted(got[0] + got[1], key=int) == [str(i).encode() for i in range(count)]
        assert got[0], "both members of the group took a share"
        assert got[1], "both members of the group took a share"
        solo_values = []
        for _ in range(count):
            delivery = await receive(solo)
            solo_values.append(delivery.value)
            await delivery.ack()
        assert solo_values == [str(i).encode() for i in range(count)]  # one queue: FIFO
    finally:
        await producer.close()
        for consumer in [*members, solo]:
            await consumer.close()


async def test_dead_letter_lands_with_reason_headers(
    rabbitmq_url: str, names: Names, admin: object
) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "orders:created")
    producer = producer_for(rabbitmq_url, names)
    try:
        await producer.send(
            OutgoingMessage("orders:created", b"bad", key=b"o-1", headers={"trace": "t1"}),
            timeout=5,
        )
        delivery = await receive(consumer)
        reason = DeadLetterReason(
            stage="handler",
            error_type="ValueError",
            error_message="boom",
            original_topic="orders:created",
            attempts=3,
            handler="handle_order",
        )
        await delivery.dead_letter(dead_letter_headers(delivery.headers, reason))
        [dead] = await get_messages(admin, names.topology().dead_letter_queue, 1)
        assert dead.body == b"bad"
        assert dead.routing_key == "orders.created"
        headers = {k: v for k, v in dead.headers.items()}
        assert headers["trace"] == "t1"
        assert headers["dispytch-topic"] == "orders:created"
        assert headers["dispytch-key"] == "o-1"
        assert headers["dispytch-dlq-group"] == names.topology().queue("g")
        assert DeadLetterReason.from_headers(headers) == reason
    finally:
        await producer.close()
        await consumer.close()
    # settled: the group's queue is empty
    again = await started_consumer(rabbitmq_url, names, "g", "orders:created")
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(again.receive(), 0.5)
    finally:
        await again.close()


async def test_unroutable_publish_raises_unless_mandatory_is_off(
    rabbitmq_url: str, names: Names
) -> None:
    producer = producer_for(rabbitmq_url, names)
    try:
        with pytest.raises(UnroutableMessageError):
            await producer.send(OutgoingMessage("nobody:listens", b"x"), timeout=5)
        await producer.send(
            OutgoingMessage("nobody:listens", b"x", config=RabbitMQEventConfig(mandatory=False)),
            timeout=5,
        )
    finally:
        await producer.close()
    lenient = producer_for(rabbitmq_url, names, mandatory=False)
    try:
        await lenient.send(OutgoingMessage("nobody:listens", b"x"), timeout=5)
    finally:
        await lenient.close()


async def test_receive_raises_after_stop(rabbitmq_url: str, names: Names) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "t")
    waiting = asyncio.create_task(consumer.receive())
    await asyncio.sleep(0.05)
    await consumer.stop()
    with pytest.raises(ConsumerStoppedError):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(ConsumerStoppedError):
        await consumer.receive()
    await consumer.close()
    await consumer.close()  # closing twice is harmless


async def test_retry_later_replaces_headers_and_keeps_topic_and_key(
    rabbitmq_url: str, names: Names
) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "a:{x}")
    names.queues.add(f"{names.topology().queue('g')}.delay.300")
    producer = producer_for(rabbitmq_url, names)
    try:
        await producer.send(OutgoingMessage("a:1", b"v", key=b"k", headers={"old": "1"}), timeout=5)
        first = await receive(consumer)
        await first.retry_later(0.3, {"dispytch-attempt": "2"})
        [again] = await consumer.receive_many(10)
        assert (again.topic, again.value, again.key) == ("a:1", b"v", b"k")
        assert again.headers == {"dispytch-attempt": "2"}
        await again.ack()
    finally:
        await producer.close()
        await consumer.close()


async def test_receive_many_hands_out_what_is_buffered(rabbitmq_url: str, names: Names) -> None:
    consumer = await started_consumer(rabbitmq_url, names, "g", "t", prefetch=50)
    producer = producer_for(rabbitmq_url, names)
    try:
        await producer.send_many([OutgoingMessage("t", b"%d" % i) for i in range(30)], timeout=5)
        got: list[bytes] = []
        while len(got) < 30:
            batch = await asyncio.wait_for(consumer.receive_many(8), 10)
            assert 1 <= len(batch) <= 8
            for delivery in batch:
                got.append(delivery.value)
                await delivery.ack()
        assert got == [b"%d" % i for i in range(30)]
    finally:
        await producer.close()
        await consumer.close()


async def test_refused_declarations_and_unreachable_broker_raise_dispytch_errors(
    rabbitmq_url: str, names: Names, admin: Any
) -> None:
    topology = names.topology()
    await admin.declare_exchange(topology.exchange, "fanout", durable=True)  # not a topic one
    with pytest.raises(ProducerError, match="cannot declare"):
        await producer_for(rabbitmq_url, names).start()
    consumer = RabbitMQConsumer.create(rabbitmq_url, names.group("g"), exchange=topology.exchange)
    with pytest.raises(BackendError):
        await consumer.start(subs("t"))
    unreachable = "amqp://guest:guest@127.0.0.1:1/"
    with pytest.raises(BrokerUnavailableError):
        await RabbitMQProducer.create(unreachable, connect_timeout=2).start()
    with pytest.raises(BrokerUnavailableError):
        await RabbitMQConsumer.create(unreachable, "g", connect_timeout=2).start(subs("t"))


async def test_prefetch_follows_the_listeners_max_concurrency(
    rabbitmq_url: str, names: Names
) -> None:
    """Only one message is out at a time with max_concurrency=1: the broker holds the second
    back until the first is acked (so a slow first handler delays the second)."""
    from dispytch import Event, EventListener

    exchange = names.topology().exchange
    consumer = RabbitMQConsumer.create(rabbitmq_url, names.group("g"), exchange=exchange)
    listener = EventListener(consumer, max_concurrency=1, topic_delimiter=".")
    unacked_at_once: list[int] = []

    @listener.handler(topic="jobs", event="job")
    async def handle(event: Event[dict[str, int]]) -> None:
        unacked_at_once.append(consumer._buffer.qsize())
        await asyncio.sleep(0.2)

    producer = RabbitMQProducer.create(rabbitmq_url, exchange=exchange, topic_delimiter=".")
    envelope = b'{"id": "%d", "type": "job", "body": {}, "timestamp": 1}'
    async with listener:
        await producer.start()
        for n in range(3):
            await producer.send(OutgoingMessage(topic="jobs", value=envelope % n))
        deadline = time.monotonic() + 10
        while len(unacked_at_once) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    await producer.close()
    assert consumer._prefetch == 1
    assert unacked_at_once == [0, 0, 0]  # nothing fetched beyond the one being handled
