"""The conformance suite against the real Kafka broker."""

from __future__ import annotations

import pytest

from dispytch.backends.base import Consumer, Producer
from dispytch.kafka import KAFKA_CAPABILITIES, KafkaConsumer, KafkaProducer
from dispytch.testing.conformance import BackendHarness, ConformanceSuite

from .conftest import NewTopicFactory
from .kafka_helpers import read_topic

pytestmark = pytest.mark.kafka


class TestKafkaConformance(ConformanceSuite):
    @pytest.fixture
    async def harness(self, bootstrap: str, new_topic: NewTopicFactory) -> BackendHarness:
        async def topic() -> str:
            return await new_topic(partitions=3, prefix="conformance")

        async def consumer(group: str, topics: list[str]) -> Consumer:
            return KafkaConsumer.create(bootstrap, group, commit_interval=0.1)

        async def producer() -> Producer:
            return KafkaProducer.create(bootstrap, linger_ms=5)

        async def read_dead_letters(
            topic: str, count: int, timeout: float
        ) -> list[tuple[bytes, dict[str, str]]]:
            records = await read_topic(bootstrap, topic + ".dlq", count, timeout)
            return [
                (value or b"", {name: item.decode() for name, item in headers.items()})
                for value, _, headers in records
            ]

        return BackendHarness(
            name="kafka",
            capabilities=KAFKA_CAPABILITIES,
            new_topic=topic,
            consumer=consumer,
            producer=producer,
            read_dead_letters=read_dead_letters,
            delimiter=".",
            receive_timeout=30.0,
        )
