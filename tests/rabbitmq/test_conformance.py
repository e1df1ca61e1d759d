"""The shared conformance suite, run against RabbitMQ (create() mode, ':' topic delimiter)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from dispytch.backends.base import Consumer, Producer
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer
from dispytch.rabbitmq.consumer import CAPABILITIES
from dispytch.rabbitmq.headers import TOPIC_HEADER, to_text_headers
from dispytch.testing.conformance import BackendHarness, ConformanceSuite

from .conftest import Names, get_messages

pytestmark = pytest.mark.rabbitmq


class TestRabbitMQConformance(ConformanceSuite):
    @pytest.fixture
    async def harness(self, rabbitmq_url: str, names: Names, admin: Any) -> BackendHarness:
        topology = names.topology()

        async def new_topic() -> str:
            return f"conf:{uuid.uuid4().hex[:12]}:events"

        async def consumer(group: str, topics: list[str]) -> Consumer:
            return RabbitMQConsumer.create(
                rabbitmq_url, names.group(group), exchange=topology.exchange
            )

        async def producer() -> Producer:
            # the suite also sends to topics nobody subscribed to: that must not raise here
            return RabbitMQProducer.create(
                rabbitmq_url, exchange=topology.exchange, mandatory=False
            )

        async def read_dead_letters(
            topic: str, count: int, timeout: float
        ) -> list[tuple[bytes, dict[str, str]]]:
            letters = await get_messages(admin, topology.dead_letter_queue, count, timeout)
            assert all(m.headers.get(TOPIC_HEADER) == topic for m in letters)
            return [(m.body, to_text_headers(m.headers)) for m in letters]

        return BackendHarness(
            name="rabbitmq",
            capabilities=CAPABILITIES,
            new_topic=new_topic,
            consumer=consumer,
            producer=producer,
            read_dead_letters=read_dead_letters,
            delimiter=":",
            receive_timeout=10.0,
        )
