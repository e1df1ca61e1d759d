"""On Kafka, a handler raising CancelledError must not stop its partition's commit.

Before, the worker died with the delivery unsettled: the partition's committed offset stayed
below it for good, so every later record of the partition would be handled again after a
restart. Now the event is dead-lettered and the commit goes on while the listener runs.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from dispytch import Event, EventListener
from dispytch.kafka import KafkaConsumer

from .conftest import NewTopicFactory
from .kafka_helpers import eventually, group_name, produce, read_topic

pytestmark = pytest.mark.kafka


async def test_the_partition_commit_goes_past_a_handler_that_raised_cancelled_error(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    group = group_name()
    values = [
        json.dumps({"id": str(uuid.uuid4()), "type": "job", "body": {"n": n}}).encode()
        for n in range(20)
    ]
    await produce(bootstrap, topic, values, key=b"one-key")
    listener = EventListener(
        KafkaConsumer.create(bootstrap, group, commit_interval=0.1),
        topic_delimiter=".",
        max_concurrency=4,
        shutdown_grace=5,
    )
    handled: list[int] = []

    @listener.handler(topic=topic, event="job")
    async def job(event: Event) -> None:
        if event.body["n"] < 3:
            cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            cancelled.cancel()
            await cancelled
        handled.append(event.body["n"])

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        async with listener:

            async def committed_to_the_end() -> bool:
                offsets = await admin.list_consumer_group_offsets(group)
                found = offsets.get(TopicPartition(topic, 0))
                return found is not None and found.offset == len(values)

            await eventually(committed_to_the_end, timeout=30, what="the commit of every record")
            await asyncio.wait_for(listener.stop(), 30)
    finally:
        await admin.close()
    assert handled == list(range(3, 20))
    letters = await read_topic(bootstrap, f"{topic}.dlq", 3)
    assert [json.loads(value or b"")["body"]["n"] for value, _, _ in letters] == [0, 1, 2]
    assert {headers["dispytch-dlq-error-type"] for _, _, headers in letters} == {b"CancelledError"}
