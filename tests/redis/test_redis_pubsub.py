"""The 0.10 names over Pub/Sub: `RedisConsumer(pubsub)` and `RedisProducer(redis)` still
carry events to a listener (at most once: nothing is kept for absent subscribers)."""

from __future__ import annotations

import asyncio

import pytest

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.redis import RedisConsumer, RedisProducer

from .conftest import aioredis, unique

pytestmark = pytest.mark.redis


async def test_pubsub_names_of_0_10_carry_events(redis_url: str) -> None:
    channel = unique("pings")

    class Ping(EventBase):
        __topic__ = channel
        __event_type__ = "ping"
        n: int

    subscriber = aioredis.Redis.from_url(redis_url)
    publisher = aioredis.Redis.from_url(redis_url)
    pubsub = subscriber.pubsub()
    await pubsub.subscribe(channel)
    listener = EventListener(RedisConsumer(pubsub))
    seen: list[int] = []
    done = asyncio.Event()

    @listener.handler(topic=channel, event="ping")
    async def on_ping(event: Event[Ping]) -> None:
        seen.append(event.body.n)
        if len(seen) == 3:
            done.set()

    try:
        async with listener:
            emitter = EventEmitter(RedisProducer(publisher))
            for n in range(3):
                await emitter.emit(Ping(n=n))
            await asyncio.wait_for(done.wait(), 10)
        assert sorted(seen) == [0, 1, 2]
        assert RedisConsumer(pubsub).capabilities.persistent is False
    finally:
        await pubsub.aclose()
        await subscriber.aclose()
        await publisher.aclose()
