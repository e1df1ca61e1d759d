"""nack() reads the record again; dead_letter() stores it in `<topic>.dlq`, then settles."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from dispytch.errors import ProducerError
from dispytch.kafka import KafkaConsumer
from dispytch.reasons import DeadLetterReason, dead_letter_headers

from .conftest import NewTopicFactory
from .kafka_helpers import group_name, produce, read_topic, receive_n, receive_none

pytestmark = pytest.mark.kafka


def reason(topic: str) -> DeadLetterReason:
    return DeadLetterReason(
        stage="handler",
        error_type="ValueError",
        error_message="boom",
        original_topic=topic,
        attempts=3,
        handler="handle_it",
        event_id="e-1",
        event_type="thing_happened",
    )


async def test_nack_redelivers_only_the_nacked_record(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"0", b"1", b"2", b"3"])
    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[topic])
    await consumer.start([])
    try:
        first = await receive_n(consumer, 4)
        await first[0].ack()
        await first[2].ack()
        await first[1].nack()
        (again,) = await receive_n(consumer, 1)
        assert again.value == b"1"
        assert again.metadata["offset"] == 1
        # 3 is still running: it is not handed out twice
        assert await receive_none(consumer, 0.5) == []
        await again.nack()
        (third,) = await receive_n(consumer, 1)
        assert third.value == b"1"
        await third.ack()
        await first[3].ack()
    finally:
        await consumer.close()


async def test_nack_with_delay_redelivers_later(bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"0", b"1"])
    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[topic])
    await consumer.start([])
    try:
        first, second = await receive_n(consumer, 2)
        await first.nack(delay=0.5)
        assert await receive_none(consumer, 0.3) == []
        (again,) = await receive_n(consumer, 1, timeout=5)
        assert again.value == b"0"
        await again.ack()
        await second.ack()
    finally:
        await consumer.close()


async def test_an_unsettled_nacked_record_survives_a_restart(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"0", b"1", b"2"])
    group = group_name()
    consumer = KafkaConsumer.create(bootstrap, group, topics=[topic], commit_interval=0.05)
    await consumer.start([])
    first = await receive_n(consumer, 3)
    await first[0].ack()
    await first[2].ack()
    await first[1].nack(delay=60)  # redelivery would come much later
    await consumer.close()

    again = KafkaConsumer.create(bootstrap, group, topics=[topic])
    await again.start([])
    try:
        assert sorted(d.value for d in await receive_n(again, 2)) == [b"1", b"2"]
    finally:
        await again.close()


async def test_dead_letter_lands_in_the_dlq_topic_with_the_reason(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(
        bootstrap,
        topic,
        [b"poison"],
        key=b"k1",
        headers=[("trace", b"t-1"), ("bin", b"\xff\xfe"), ("dispytch-dlq-stage", b"old")],
    )
    group = group_name()
    consumer = KafkaConsumer.create(bootstrap, group, topics=[topic], commit_interval=0.05)
    await consumer.start([])
    (delivery,) = await receive_n(consumer, 1)
    await delivery.dead_letter(dead_letter_headers(delivery.headers, reason(topic)))
    await consumer.close()

    ((value, key, headers),) = await read_topic(bootstrap, topic + ".dlq", 1)
    assert value == b"poison"
    assert key == b"k1"
    assert headers["trace"] == b"t-1"
    assert headers.pop("bin") == b"\xff\xfe"  # passed on unchanged: the bytes it was stored with
    decoded = {name: item.decode() for name, item in headers.items()}
    assert DeadLetterReason.from_headers(decoded) == reason(topic)

    # dead-lettered means settled: the group does not get it again
    again = KafkaConsumer.create(bootstrap, group, topics=[topic])
    await again.start([])
    try:
        assert await receive_none(again, 1.0) == []
    finally:
        await again.close()


async def test_dead_letter_topic_naming_and_a_given_producer(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"a", b"b"])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    consumer = KafkaConsumer.create(
        bootstrap,
        group_name(),
        topics=[topic],
        dead_letter_topic=lambda original: "dead-" + original,
        dead_letter_producer=producer,
    )
    await consumer.start([])
    try:
        for delivery in await receive_n(consumer, 2):
            await delivery.dead_letter(dead_letter_headers(delivery.headers, reason(topic)))
    finally:
        await consumer.close()
    # the given producer is the user's: still usable after close()
    await producer.send_and_wait("dead-" + topic, b"c")
    await producer.stop()
    stored = await read_topic(bootstrap, "dead-" + topic, 3)
    assert sorted(value for value, _, _ in stored) == [b"a", b"b", b"c"]


async def test_a_failed_dead_letter_does_not_settle(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"x"])
    group = group_name()
    broken = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await broken.start()
    await broken.stop()  # a dead-letter producer that can no longer send
    consumer = KafkaConsumer.create(
        bootstrap,
        group,
        topics=[topic],
        commit_interval=0.05,
        dead_letter_producer=broken,
        dead_letter_timeout=1,
    )
    await consumer.start([])
    (delivery,) = await receive_n(consumer, 1)
    with pytest.raises(ProducerError):
        await delivery.dead_letter(dead_letter_headers(delivery.headers, reason(topic)))
    await consumer.close()

    again = KafkaConsumer.create(bootstrap, group, topics=[topic])
    await again.start([])
    try:
        assert [d.value for d in await receive_n(again, 1)] == [b"x"]
    finally:
        await again.close()
