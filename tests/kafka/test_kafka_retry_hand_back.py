"""A delayed retry whose copy the retry topic refuses, on the real broker.

A failed hand-back may have been stored all the same (an unconfirmed send can land later),
so the listener must not also retry in place: the record goes back to its partition and is
handed back again from there (see docs/delivery.md).
"""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dispytch import Event, EventListener
from dispytch.kafka import KafkaConsumer

from .conftest import NewTopicFactory
from .kafka_helpers import eventually, group_name, produce, read_topic

pytestmark = pytest.mark.kafka


async def test_an_unconfirmed_hand_back_is_not_also_retried_in_place(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)
    group = group_name()
    retry_topic = f"{group}.retry"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # the retry topic refuses every copy (too large) until the limit is raised
        await admin.create_topics(
            [NewTopic(retry_topic, 1, 1, topic_configs={"max.message.bytes": "64"})]
        )
        listener = EventListener(
            KafkaConsumer.create(bootstrap, group, commit_interval=0.05, dead_letter_timeout=1)
        )
        attempts: list[int] = []

        @listener.handler(
            topic=topic, event="job", retries=3, retry_interval=0.2, delayed_retries=True
        )
        async def handle(event: Event[dict[str, str]]) -> None:
            attempts.append(event.attempt)
            if event.attempt == 1:
                raise RuntimeError("first attempt fails")

        value = json.dumps({"id": str(uuid.uuid4()), "type": "job", "body": {}}).encode()
        async with listener:
            await produce(bootstrap, topic, [value])

            async def given_back_twice() -> bool:
                assert 2 not in attempts, f"retried in place: {attempts}"
                return attempts.count(1) >= 3

            # each hand-back fails; the record comes back from its partition each time
            await eventually(given_back_twice, timeout=30, what="the record handled again")
            await admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC, retry_topic, {"max.message.bytes": "1000000"}
                    )
                ]
            )

            async def retried() -> bool:
                return 2 in attempts

            await eventually(retried, timeout=30, what="attempt 2 from the retry topic")
        stored = await read_topic(bootstrap, retry_topic, 1, timeout=10)
        assert stored
        # every attempt 2 ran from a copy the retry topic holds, none in place
        assert attempts.count(2) <= len(
            await read_topic(bootstrap, retry_topic, attempts.count(2), timeout=10)
        )
    finally:
        await admin.delete_topics([retry_topic])
        await admin.close()
