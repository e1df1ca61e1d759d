"""The conformance suite against the real Redis server (Streams with consumer groups)."""

from __future__ import annotations

import asyncio

import pytest

from dispytch.backends.base import Consumer, Producer
from dispytch.redis.consumer import CAPABILITIES, RedisStreamConsumer
from dispytch.redis.producer import RedisStreamProducer
from dispytch.testing.conformance import BackendHarness, ConformanceSuite, new_name

from .conftest import aioredis

pytestmark = pytest.mark.redis


async def read_dead_letter_stream(
    url: str, topic: str, count: int, timeout: float
) -> list[tuple[bytes, dict[str, str]]]:
    from dispytch.redis._layout import decode_headers

    client = aioredis.Redis.from_url(url)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while True:
            entries = await client.xrange(topic + ".dlq", "-", "+")
            if len(entries) >= count or asyncio.get_running_loop().time() > deadline:
                return [
                    (fields.get(b"v", b""), decode_headers(fields.get(b"h")))
                    for _, fields in entries[:count]
                ]
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


class TestRedisConformance(ConformanceSuite):
    @pytest.fixture
    async def harness(self, redis_url: str) -> BackendHarness:
        async def topic() -> str:
            return new_name("conformance")

        async def consumer(group: str, topics: list[str]) -> Consumer:
            return RedisStreamConsumer.create(redis_url, group, claim_idle=30.0, block=0.5)

        async def producer() -> Producer:
            return RedisStreamProducer.create(redis_url)

        async def read_dead_letters(
            topic: str, count: int, timeout: float
        ) -> list[tuple[bytes, dict[str, str]]]:
            return await read_dead_letter_stream(redis_url, topic, count, timeout)

        return BackendHarness(
            name="redis",
            capabilities=CAPABILITIES,
            new_topic=topic,
            consumer=consumer,
            producer=producer,
            read_dead_letters=read_dead_letters,
            delimiter=".",
            receive_timeout=10.0,
        )
