"""The per-record shortcuts of the Kafka consumer keep the contract: batched hand-out, lazy
metadata, shared empty headers, settlement without the committer, time-based commits."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from dispytch.kafka import KafkaConsumer
from dispytch.kafka._delivery import RecordMetadata
from dispytch.kafka._offsets import PartitionOffsets

from .conftest import NewTopicFactory
from .kafka_helpers import eventually, group_name, produce, receive_n, receive_none


def records(*offsets: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(offset=offset) for offset in offsets]


def test_a_fresh_batch_is_handed_out_whole() -> None:
    offsets = PartitionOffsets("t", 0)
    batch = records(3, 4, 7)
    assert offsets.hand_out_many(batch) == batch
    assert offsets.in_flight == {3, 4, 7}
    assert offsets.high == 7
    assert offsets.commit_offset() == 3


def test_a_batch_read_again_hands_out_only_the_nacked_and_the_new() -> None:
    offsets = PartitionOffsets("t", 0)
    offsets.hand_out_many(records(0, 1, 2, 3))
    assert offsets.settle(0)
    assert offsets.nack(1) == 1
    again = offsets.hand_out_many(records(1, 2, 3, 4))
    assert [r.offset for r in again] == [1, 4]
    assert offsets.in_flight == {1, 2, 3, 4}
    assert offsets.commit_offset() == 1


def test_record_metadata_reads_the_record() -> None:
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "orders", 2, 41, 1_700_000_000_000, 0, b"k", b"v", None, 1, 1, ()
    )
    metadata = RecordMetadata(record)
    expected = {
        "topic": "orders",
        "partition": 2,
        "offset": 41,
        "timestamp": 1_700_000_000_000,
        "key": b"k",
    }
    assert dict(metadata) == expected
    assert metadata == expected
    assert len(metadata) == 5
    assert metadata.get("missing") is None
    with pytest.raises(KeyError):
        metadata["value"]


@pytest.mark.kafka
async def test_records_without_headers_share_an_empty_read_only_mapping(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"a", b"b"])
    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[topic])
    await consumer.start([])
    try:
        first, second = await receive_n(consumer, 2)
        assert dict(first.headers) == {}
        assert first.headers is second.headers
        with pytest.raises(TypeError):
            first.headers["x"] = "y"  # type: ignore[index]
        await first.ack()
        await second.ack()
    finally:
        await consumer.close()


@pytest.mark.kafka
async def test_offsets_are_committed_by_time_alone(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"%d" % i for i in range(5)])
    group = group_name()
    consumer = KafkaConsumer.create(bootstrap, group, topics=[topic], commit_interval=0.05)
    await consumer.start([])
    try:
        for delivery in await receive_n(consumer, 5):
            await delivery.ack()
        client = consumer.client
        assert client is not None
        partition = TopicPartition(topic, 0)

        async def committed() -> bool:
            return await client.committed(partition) == 5

        await eventually(committed, timeout=10, what="the commit of all five offsets")
    finally:
        await consumer.close()
    again = KafkaConsumer.create(bootstrap, group, topics=[topic])
    await again.start([])
    try:
        assert await receive_none(again, within=1.0) == []
    finally:
        await again.close()


@pytest.mark.kafka
async def test_a_rebalance_stops_waiting_as_soon_as_the_revoked_deliveries_settle(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=2)
    await produce(bootstrap, topic, [b"a0", b"a1"], partition=0)
    await produce(bootstrap, topic, [b"b0", b"b1"], partition=1)
    group = group_name()
    # only the rebalance commits; it would wait 60 s for a delivery that is never settled
    first = KafkaConsumer.create(
        bootstrap, group, topics=[topic], commit_interval=60, revoke_timeout=60
    )
    await first.start([])
    deliveries = await receive_n(first, 4)
    (held,) = [d for d in deliveries if d.value == b"a1"]
    for delivery in deliveries:
        if delivery is not held:
            await delivery.ack()

    second = KafkaConsumer.create(bootstrap, group, topics=[topic])
    joining = asyncio.create_task(second.start([]))
    seen: list[bytes] = []

    async def drain(consumer: KafkaConsumer) -> None:
        while True:
            delivery = await consumer.receive()
            seen.append(delivery.value)
            await delivery.ack()

    drains = [asyncio.create_task(drain(first))]
    try:

        async def revoke_waits() -> bool:
            return first._committer._waiters > 0

        await eventually(revoke_waits, timeout=30, what="the revocation to wait for a1")
        await held.ack()  # settled during the wait: it ends now, not after 60 s
        await asyncio.wait_for(joining, 20)
        # everything was settled before the revocation committed: nothing comes again
        assert await receive_none(second, within=1.0) == []
        assert seen == []
    finally:
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        await first.close()
        await second.close()


@pytest.mark.kafka
async def test_a_fetched_batch_reaches_the_waiting_receive_in_the_next_loop_iteration(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    """The fetch task buffers what aiokafka hands it and wakes the waiting `receive_many`
    itself: one event-loop iteration from the batch to the caller, not more (each iteration
    is latency at a moderate rate, and waits for the CPU on a loaded machine)."""
    topic = await new_topic()
    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[topic])
    await consumer.start([])
    client = consumer.client
    assert client is not None
    loop = asyncio.get_running_loop()
    iterations = 0
    ticking: list[asyncio.Handle] = []

    def tick() -> None:  # runs once per loop iteration while it is scheduled
        nonlocal iterations
        iterations += 1
        ticking[:] = [loop.call_soon(tick)]

    draw = client.getmany

    async def getmany(*partitions: TopicPartition, **options: Any) -> Any:
        batches = await draw(*partitions, **options)
        if batches and not ticking:
            ticking.append(loop.call_soon(tick))  # count from the step that drew the batch
        return batches

    client.getmany = getmany  # type: ignore[method-assign]

    async def receive() -> tuple[list[bytes], int]:
        deliveries = await consumer.receive_many(10)
        return [d.value for d in deliveries], iterations

    try:
        receiving = asyncio.ensure_future(receive())
        await produce(bootstrap, topic, [b"a"])
        values, counted = await asyncio.wait_for(receiving, 30)
        assert values == [b"a"]
        assert counted <= 1
    finally:
        for handle in ticking:
            handle.cancel()
        await consumer.close()
