"""A nacked record is read again from its partition, on the real broker: a hold on a retry
partition must not override that seek, and a nacked offset that no longer exists (retention,
deleteRecords) must not freeze the partition's commit."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from dispytch.backends.base import ListenerNeeds, Subscription
from dispytch.kafka import KafkaConsumer

from .conftest import NewTopicFactory
from .kafka_helpers import eventually, group_name, produce, receive_n

pytestmark = pytest.mark.kafka


def retry_record_headers(topic: str, due_in: float) -> list[tuple[str, bytes]]:
    due_ms = int((time.time() + due_in) * 1000)
    return [("dispytch-retry-topic", topic.encode()), ("dispytch-retry-at", str(due_ms).encode())]


async def started(bootstrap: str, topic: str, *, delayed_retries: bool) -> KafkaConsumer:
    consumer = KafkaConsumer.create(
        bootstrap, group_name(), commit_interval=0.05, delayed_retries=delayed_retries
    )
    consumer.prepare(ListenerNeeds(max_in_flight=10, delayed_retries=delayed_retries))
    await consumer.start([Subscription.parse(topic, ":")])
    return consumer


async def test_a_hold_on_a_retry_partition_does_not_override_the_seek_to_a_nacked_copy(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    consumer = await started(bootstrap, topic, delayed_retries=True)
    retry_topic = consumer.retry_topic
    assert retry_topic is not None
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        await producer.send_and_wait(
            retry_topic, b"r0", partition=0, headers=retry_record_headers(topic, 0)
        )
        (first,) = await receive_n(consumer, 1)
        assert first.value == b"r0"
        # a fetch is under way (and outlives this receive) when the next copies arrive: one
        # due now, one due in a minute; it completes before the nack below
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(consumer.receive(), 0.05)
        sent = [
            await producer.send(
                retry_topic, b"r1", partition=0, headers=retry_record_headers(topic, 0)
            ),
            await producer.send(
                retry_topic, b"r2", partition=0, headers=retry_record_headers(topic, 60)
            ),
        ]
        await asyncio.gather(*sent)  # one batch: fetched together
        fetcher = consumer._fetcher

        async def fetched() -> bool:
            return any(chunk.records for chunk in fetcher.buffer)

        # the fetch buffers what it draws at once: r1 (due), not r2 (not due: it holds the
        # partition at r2)
        await eventually(fetched, timeout=5, what="the fetch under way")
        buffered = [r.value for chunk in fetcher.buffer for r in chunk.records[chunk.start :]]
        assert buffered == [b"r1"], "precondition: the fetch under way drew both"

        await first.nack()  # seek the retry partition back to r0
        # the hold at r2 must not undo that seek: r0 is read again now, then r1 (dropped from
        # the buffer by the seek), not in a minute (in real life: at a rebalance)
        deliveries = await receive_n(consumer, 2, timeout=10)
        assert [d.value for d in deliveries] == [b"r0", b"r1"]
        again, second = deliveries
        for delivery in (again, second):
            await delivery.ack()
    finally:
        await producer.stop()
        await consumer.close()


@pytest.mark.parametrize("nacked", [0, 2], ids=["records-after-it", "the-last-record"])
async def test_a_nacked_offset_removed_by_retention_does_not_freeze_the_commit(
    bootstrap: str, new_topic: NewTopicFactory, nacked: int
) -> None:
    topic = await new_topic(partitions=1)
    await produce(bootstrap, topic, [b"a0", b"a1", b"a2"])
    consumer = await started(bootstrap, topic, delayed_retries=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    tp = TopicPartition(topic, 0)
    try:
        deliveries = await receive_n(consumer, 3)
        for index, delivery in enumerate(deliveries):
            if index != nacked:
                await delivery.ack()
        # the seek back happens in 1 s; before that, retention removes the nacked record
        await deliveries[nacked].nack(delay=1)
        await admin.delete_records({tp: RecordsToDelete(before_offset=nacked + 1)})
        client = consumer.client
        assert client is not None

        async def committed_to_the_end() -> bool:
            return await client.committed(tp) == 3

        await eventually(committed_to_the_end, timeout=15, what="the commit passing the gap")
    finally:
        await admin.close()
        await consumer.close()
