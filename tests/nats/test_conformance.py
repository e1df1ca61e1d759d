"""The conformance suite against the real NATS JetStream server."""

from __future__ import annotations

import asyncio

import pytest

from dispytch.backends.base import Consumer, Producer
from dispytch.nats import NATS_CAPABILITIES, NatsConsumer, NatsProducer
from dispytch.nats._client import connect
from dispytch.nats.headers import from_nats
from dispytch.testing.conformance import BackendHarness, ConformanceSuite, new_name

from .conftest import TEST_TOPOLOGY

pytestmark = pytest.mark.nats


async def read_dead_letters(
    url: str, topic: str, count: int, timeout: float
) -> list[tuple[bytes, dict[str, str]]]:
    """The dead letters of `topic`, read with an ephemeral consumer (nothing is removed)."""
    client = await connect(url)
    try:
        js = client.jetstream()
        subject = TEST_TOPOLOGY.dead_letter_subject(topic)
        pull = await js.pull_subscribe(subject, stream=TEST_TOPOLOGY.dead_letter_stream)
        letters: list[tuple[bytes, dict[str, str]]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(letters) < count and asyncio.get_running_loop().time() < deadline:
            try:
                msgs = await pull.fetch(count - len(letters), timeout=1.0)
            except Exception:
                continue
            for msg in msgs:
                headers, _ = from_nats(msg.headers)
                letters.append((msg.data, headers))
                await msg.ack()
        await pull.unsubscribe()
        return letters
    finally:
        await client.close()


class TestNatsConformance(ConformanceSuite):
    @pytest.fixture
    async def harness(self, nats_url: str) -> BackendHarness:
        async def topic() -> str:
            return "dtest." + new_name("conf")

        async def consumer(group: str, topics: list[str]) -> Consumer:
            return NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, ack_wait=5.0)

        async def producer() -> Producer:
            return NatsProducer(nats_url)

        async def dead_letters(
            topic: str, count: int, timeout: float
        ) -> list[tuple[bytes, dict[str, str]]]:
            return await read_dead_letters(nats_url, topic, count, timeout)

        return BackendHarness(
            name="nats",
            capabilities=NATS_CAPABILITIES,
            new_topic=topic,
            consumer=consumer,
            producer=producer,
            read_dead_letters=dead_letters,
            delimiter=".",
            receive_timeout=15.0,
        )
