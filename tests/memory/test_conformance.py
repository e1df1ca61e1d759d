"""The conformance suite against the in-memory broker."""

from __future__ import annotations

import asyncio

import pytest

from dispytch.backends.base import Consumer, Producer
from dispytch.memory import InMemoryBroker
from dispytch.testing.conformance import BackendHarness, ConformanceSuite, new_name


def memory_harness(broker: InMemoryBroker) -> BackendHarness:
    async def new_topic() -> str:
        return new_name("topic")

    async def consumer(group: str, topics: list[str]) -> Consumer:
        return broker.consumer(group, delimiter=".")

    async def producer() -> Producer:
        return broker.producer()

    async def read_dead_letters(
        topic: str, count: int, timeout: float
    ) -> list[tuple[bytes, dict[str, str]]]:
        reader = broker.consumer(new_name("dlq-reader"), [broker.dead_letter_topic(topic)], ".")
        await reader.start([])
        letters = []
        try:
            for _ in range(count):
                delivery = await asyncio.wait_for(reader.receive(), timeout)
                letters.append((delivery.value, dict(delivery.headers)))
                await delivery.ack()
        finally:
            await reader.close()
        return letters

    return BackendHarness(
        name="memory",
        capabilities=broker.capabilities,
        new_topic=new_topic,
        consumer=consumer,
        producer=producer,
        read_dead_letters=read_dead_letters,
        receive_timeout=5.0,
    )


class TestInMemoryConformance(ConformanceSuite):
    @pytest.fixture
    async def harness(self) -> BackendHarness:
        return memory_harness(InMemoryBroker())
