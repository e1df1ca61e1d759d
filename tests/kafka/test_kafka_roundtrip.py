"""Produce with `KafkaProducer`, consume with `KafkaConsumer`: bytes, key, headers, metadata."""

from __future__ import annotations

import pytest

from dispytch.backends.base import ListenerNeeds, OutgoingMessage, Subscription
from dispytch.errors import BrokerUnavailableError, MessageTooLargeError
from dispytch.kafka import KafkaConsumer, KafkaEventConfig, KafkaProducer

from .conftest import NewTopicFactory
from .kafka_helpers import group_name, read_topic, receive_n, receive_none

pytestmark = pytest.mark.kafka


async def test_round_trip_with_key_and_headers(bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = await new_topic(partitions=3)
    producer = KafkaProducer.create(bootstrap)
    await producer.send(
        OutgoingMessage(topic, b'{"a": 1}', key=b"user-1", headers={"trace": "abc", "n": "1"}),
        timeout=10,
    )
    await producer.send(OutgoingMessage(topic, b"keyless"), timeout=10)
    await producer.close()

    consumer = KafkaConsumer.create(bootstrap, group_name())
    await consumer.start([Subscription.parse(topic, ".")])
    try:
        deliveries = sorted(await receive_n(consumer, 2), key=lambda d: d.value)
        keyless, keyed = deliveries
        assert keyed.value == b'{"a": 1}'
        assert keyed.key == b"user-1"
        assert keyed.topic == topic
        assert dict(keyed.headers) == {"trace": "abc", "n": "1"}
        partition = keyed.metadata["partition"]
        assert keyed.ordering_key == (topic, partition, b"user-1")
        assert keyed.metadata["topic"] == topic
        assert keyed.metadata["offset"] == 0
        assert keyed.metadata["key"] == b"user-1"
        assert isinstance(keyed.metadata["timestamp"], int)
        assert keyless.key is None
        assert keyless.ordering_key is None
        for delivery in deliveries:
            await delivery.ack()
    finally:
        await consumer.close()


async def test_header_values_that_are_not_utf8_are_replaced(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    from .kafka_helpers import produce

    topic = await new_topic()
    await produce(bootstrap, topic, [b"x"], headers=[("bad", b"\xff\xfe"), ("none", b"")])
    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[topic])
    await consumer.start([])
    try:
        (delivery,) = await receive_n(consumer, 1)
        assert delivery.headers["bad"] == "\ufffd\ufffd"
        assert delivery.headers["none"] == ""
        await delivery.ack()
    finally:
        await consumer.close()


async def test_event_config_key_partition_and_headers(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=4)
    producer = KafkaProducer.create(bootstrap)
    config = KafkaEventConfig(partition_key="order-7", headers={"source": b"billing", "v": 2})
    messages = [
        OutgoingMessage(topic, f"{i}".encode(), key=b"ignored", headers={"v": "1"}, config=config)
        for i in range(5)
    ]
    await producer.send_many(messages, timeout=10)
    pinned = KafkaEventConfig(partition=3, timestamp_ms=1_700_000_000_000)
    await producer.send(OutgoingMessage(topic, b"pinned", config=pinned), timeout=10)
    await producer.close()

    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[topic])
    await consumer.start([])
    try:
        deliveries = await receive_n(consumer, 6)
        keyed = [d for d in deliveries if d.value != b"pinned"]
        assert {d.key for d in keyed} == {b"order-7"}
        assert len({d.metadata["partition"] for d in keyed}) == 1
        # one key, one partition: in the order they were sent
        assert [d.value for d in keyed] == [b"0", b"1", b"2", b"3", b"4"]
        assert all(dict(d.headers) == {"v": "2", "source": "billing"} for d in keyed)
        (pinned_delivery,) = [d for d in deliveries if d.value == b"pinned"]
        assert pinned_delivery.metadata["partition"] == 3
        assert pinned_delivery.metadata["timestamp"] == 1_700_000_000_000
    finally:
        await consumer.close()


async def test_send_many_stores_every_message(bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = await new_topic(partitions=2)
    producer = KafkaProducer.create(bootstrap, linger_ms=5)
    await producer.send_many([OutgoingMessage(topic, b"%d" % i) for i in range(300)], timeout=20)
    await producer.close()
    values = {value for value, _, _ in await read_topic(bootstrap, topic, 300)}
    assert values == {b"%d" % i for i in range(300)}


async def test_too_large_message_is_refused(bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = await new_topic()
    producer = KafkaProducer.create(bootstrap)
    try:
        with pytest.raises(MessageTooLargeError):
            await producer.send(OutgoingMessage(topic, b"x" * 2_000_000), timeout=10)
    finally:
        await producer.close()


async def test_unreachable_broker_is_reported() -> None:
    producer = KafkaProducer.create("127.0.0.1:1", request_timeout_ms=2000)
    with pytest.raises(BrokerUnavailableError):
        await producer.start()
    consumer = KafkaConsumer.create("127.0.0.1:1", "g", topics=["t"], request_timeout_ms=2000)
    with pytest.raises(BrokerUnavailableError):
        await consumer.start([])
    await consumer.close()


async def test_wildcard_handler_topics_subscribe_by_pattern(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    base = await new_topic(prefix="orders")
    eu, us = await new_topic(prefix=base), await new_topic(prefix=base)
    # Kafka topic names cannot hold ":"; "-" is the delimiter here: {base}-{region}
    other = await new_topic(prefix=base + "-x")  # two segments past base: no match
    audit = await new_topic(prefix="audit")
    producer = KafkaProducer.create(bootstrap)
    for topic in (eu, us, other, audit, base):
        await producer.send(OutgoingMessage(topic, topic.encode()), timeout=10)
    await producer.close()

    consumer = KafkaConsumer.create(bootstrap, group_name())
    subscriptions = [Subscription.parse(base + "-{region}", "-"), Subscription.parse(audit, "-")]
    await consumer.start(subscriptions)
    try:
        deliveries = await receive_n(consumer, 3)
        assert sorted(d.topic for d in deliveries) == sorted([eu, us, audit])
        for delivery in deliveries:
            await delivery.ack()
        assert await receive_none(consumer, 1.0) == []
    finally:
        await consumer.close()


@pytest.mark.parametrize("delayed_retries", [True, False])
async def test_unreachable_broker_is_not_reported_as_a_retry_topic_failure(
    delayed_retries: bool,
) -> None:
    """Whether the retry topic is created (a handler retries later) or only looked for."""
    consumer = KafkaConsumer.create("127.0.0.1:1", "g", topics=["t"], request_timeout_ms=2000)
    consumer.prepare(ListenerNeeds(max_in_flight=10, delayed_retries=delayed_retries))
    with pytest.raises(BrokerUnavailableError) as refused:
        await consumer.start([])
    await consumer.close()
    assert "retry topic" not in str(refused.value), str(refused.value)
