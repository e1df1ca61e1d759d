"""What the Redis Streams backend promises beyond the conformance suite: takeover of a dead
member's entries with the stream's delivery count, delayed copies that survive a restart and
reach their group only, trimming, literal topics only."""

from __future__ import annotations

import asyncio

import pytest

from dispytch.backends.base import Delivery, OutgoingMessage, Subscription
from dispytch.redis import RedisStreamConsumer, RedisStreamProducer

from .conftest import aioredis, unique

pytestmark = pytest.mark.redis


async def started(url: str, group: str, topic: str, **options: object) -> RedisStreamConsumer:
    consumer = RedisStreamConsumer.create(url, group, **options)  # type: ignore[arg-type]
    await consumer.start([Subscription.parse(topic, ".")])
    return consumer


async def send(url: str, topic: str, *values: bytes, **options: object) -> None:
    producer = RedisStreamProducer.create(url, **options)  # type: ignore[arg-type]
    await producer.start()
    try:
        await producer.send_many([OutgoingMessage(topic, v, None, {"n": "1"}) for v in values])
    finally:
        await producer.close()


async def test_a_dead_members_entries_are_taken_over_with_their_delivery_count(
    redis_url: str,
) -> None:
    topic, group = unique("takeover"), unique("g")
    dead = await started(redis_url, group, topic, claim_idle=0.3, claim_interval=0.1)
    await send(redis_url, topic, b"a", b"b")
    held = await asyncio.wait_for(dead.receive_many(10), 5)
    assert sorted(d.value for d in held) == [b"a", b"b"]
    assert {d.delivery_count for d in held} == {1}
    # `dead` never settles nor closes: it is a process that was killed
    heir = await started(redis_url, group, topic, claim_idle=0.3, claim_interval=0.1)
    try:
        taken: list[Delivery] = []
        while len(taken) < 2:
            taken += await asyncio.wait_for(heir.receive_many(10), 5)
        assert sorted(d.value for d in taken) == [b"a", b"b"]
        assert {d.delivery_count for d in taken} == {2}
        for delivery in taken:
            await delivery.ack()
        for delivery in held:  # the dead member's late ack changes nothing
            await delivery.ack()
    finally:
        await heir.close()
        dead.closed = True
        await dead.client.aclose()


async def test_delayed_copy_survives_a_restart_and_reaches_its_group_only(
    redis_url: str,
) -> None:
    topic, group, other = unique("delayed"), unique("g"), unique("other")
    first = await started(redis_url, group, topic)
    bystander = await started(redis_url, other, topic)
    await send(redis_url, topic, b"later")
    delivery = (await asyncio.wait_for(first.receive_many(1), 5))[0]
    await delivery.retry_later(0.5, {"dispytch-attempt": "2", "kept": "yes"})
    await first.close()  # the copy waits in Redis, not in this process
    seen = (await asyncio.wait_for(bystander.receive_many(5), 5))[0]
    assert seen.value == b"later"
    await seen.ack()
    second = await started(redis_url, group, topic)
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        copy = (await asyncio.wait_for(second.receive_many(1), 10))[0]
        assert (copy.topic, copy.value) == (topic, b"later")
        assert copy.headers == {"dispytch-attempt": "2", "kept": "yes"}
        assert loop.time() - start > 0.1
        await copy.ack()
        with pytest.raises(asyncio.TimeoutError):  # moved once, not twice
            await asyncio.wait_for(second.receive_many(1), 1.5)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(bystander.receive_many(1), 0.5)
    finally:
        await second.close()
        await bystander.close()


async def test_maxlen_trims_the_stream(redis_url: str, redis_client: aioredis.Redis) -> None:
    topic = unique("trimmed")
    await send(redis_url, topic, *[b"x"] * 500, maxlen=10, approximate=False)
    assert await redis_client.xlen(topic) == 10
    await redis_client.delete(topic)


async def test_topic_patterns_are_refused_at_start(redis_url: str) -> None:
    consumer = RedisStreamConsumer.create(redis_url, unique("g"))
    with pytest.raises(ValueError, match="no wildcards"):
        await consumer.start([Subscription.parse("orders.*", ".")])
    await consumer.close()


async def test_stop_wakes_a_blocked_read_and_nothing_read_is_lost(redis_url: str) -> None:
    topic, group = unique("stop"), unique("g")
    consumer = await started(redis_url, group, topic, block=5.0)
    waiting = asyncio.create_task(consumer.receive_many(10))
    await asyncio.sleep(0.2)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await send(redis_url, topic, b"after")
    got = await asyncio.wait_for(consumer.receive_many(10), 10)
    assert [d.value for d in got] == [b"after"]
    await got[0].ack()
    await consumer.close()


async def test_a_deleted_stream_and_group_are_created_again(
    redis_url: str, redis_client: aioredis.Redis
) -> None:
    """A Redis restarted without persistence (or a stream deleted by hand) loses the group:
    the consumer creates it again and goes on reading."""
    topic = unique("deleted")
    consumer = await started(redis_url, unique("g"), topic)
    try:
        await redis_client.delete(topic)
        await send(redis_url, topic, b"after the loss")
        got = await asyncio.wait_for(consumer.receive_many(5), 10)
        assert [d.value for d in got] == [b"after the loss"]
        await got[0].ack()
    finally:
        await consumer.close()
        await redis_client.delete(topic)


def test_describe_names_the_group_and_masks_the_password() -> None:
    consumer = RedisStreamConsumer.create("redis://:s3cret-pw@127.0.0.1:6379/0", "billing")
    text = consumer.describe()
    assert "billing" in text
    assert "127.0.0.1:6379" in text
    assert "s3cret-pw" not in text
