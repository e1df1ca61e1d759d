"""dispytch 0.10 style: KafkaConsumer / KafkaProducer around the user's aiokafka clients."""

from __future__ import annotations

import logging

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener

from dispytch.backends.base import OutgoingMessage, Subscription
from dispytch.kafka import KafkaConsumer, KafkaProducer
from dispytch.reasons import DeadLetterReason, dead_letter_headers

from .conftest import NewTopicFactory
from .kafka_helpers import group_name, read_topic, receive_n, receive_none

pytestmark = pytest.mark.kafka


class RecordingListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.revoked: list[object] = []
        self.assigned: list[object] = []

    async def on_partitions_revoked(self, revoked: object) -> None:
        self.revoked.append(revoked)

    def on_partitions_assigned(self, assigned: object) -> None:
        self.assigned.append(assigned)


async def test_user_started_clients_work_and_stay_the_users(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=2)
    group = group_name()
    aio_producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await aio_producer.start()
    users_listener = RecordingListener()
    aio_consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    aio_consumer.subscribe([topic], listener=users_listener)
    await aio_consumer.start()

    producer = KafkaProducer(aio_producer)
    consumer = KafkaConsumer(aio_consumer, commit_interval=0.05)
    await producer.send(OutgoingMessage(topic, b"one", key=b"k", headers={"h": "v"}), timeout=10)
    await producer.send_many([OutgoingMessage(topic, b"two"), OutgoingMessage(topic, b"three")])
    await consumer.start([Subscription.parse("ignored", ".")])  # already subscribed
    deliveries = await receive_n(consumer, 3)
    assert sorted(d.value for d in deliveries) == [b"one", b"three", b"two"]
    (keyed,) = [d for d in deliveries if d.key == b"k"]
    assert dict(keyed.headers) == {"h": "v"}
    for delivery in deliveries:
        if delivery is not keyed:
            await delivery.ack()
    # dead letters through a producer made from the wrapped client's bootstrap servers
    reason = DeadLetterReason("handler", "E", "m", topic)
    await keyed.dead_letter(dead_letter_headers(keyed.headers, reason))
    await consumer.close()
    await producer.close()

    # the user's clients are the user's: still running after close()
    await aio_producer.send_and_wait(topic, b"four")
    await aio_producer.stop()
    assert users_listener.assigned, "the user's rebalance listener still runs"
    await aio_consumer.stop()

    ((value, key, _),) = await read_topic(bootstrap, topic + ".dlq", 1)
    assert (value, key) == (b"one", b"k")

    # everything settled was committed: the group only gets the new record
    again = KafkaConsumer.create(bootstrap, group, topics=[topic])
    await again.start([])
    try:
        assert [d.value for d in await receive_n(again, 1)] == [b"four"]
        assert await receive_none(again, 0.5) == []
    finally:
        await again.close()


async def test_clients_not_started_by_the_user_are_started_and_stopped(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    aio_producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    aio_consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_name(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = KafkaProducer(aio_producer)
    consumer = KafkaConsumer(aio_consumer)
    await producer.send(OutgoingMessage(topic, b"x"))
    await consumer.start([Subscription.parse(topic, ".")])  # not subscribed: subscribes
    try:
        (delivery,) = await receive_n(consumer, 1)
        assert delivery.value == b"x"
        await delivery.ack()
    finally:
        await consumer.close()
        await producer.close()
    assert aio_consumer._closed
    assert aio_producer._closed


async def test_auto_commit_on_the_users_consumer_is_warned_about(
    bootstrap: str, new_topic: NewTopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await new_topic()
    aio_consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group_name())
    consumer = KafkaConsumer(aio_consumer)
    with caplog.at_level(logging.WARNING, logger="dispytch.kafka"):
        await consumer.start([])
    await consumer.close()
    assert "enable_auto_commit=True" in caplog.text
    assert "at-least-once cannot be guaranteed" in caplog.text


async def test_a_user_started_client_is_wrapped_again_after_close(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    users_listener = RecordingListener()
    aio_consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_name(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    aio_consumer.subscribe([topic], listener=users_listener)
    await aio_consumer.start()
    producer = KafkaProducer.create(bootstrap)
    consumer = KafkaConsumer(aio_consumer, commit_interval=0.05, create_retry_topic=False)
    try:
        for value in (b"first run", b"second run"):
            await producer.send(OutgoingMessage(topic, value), timeout=10)
            await consumer.start([])
            try:
                (delivery,) = await receive_n(consumer, 1)
                assert delivery.value == value
                await delivery.ack()
            finally:
                await consumer.close()
        # our rebalance listener of the second run calls the user's, not the first run's
        installed = aio_consumer._subscription._listener
        assert installed._chained is users_listener
    finally:
        await producer.close()
        await aio_consumer.stop()
