"""Redis Streams throughput: Dispytch against a hand-written redis-py loop doing the same work.

Consume: EVENTS events (the 0.10 JSON envelope, in Dispytch's entry layout: `v`, `h`) are
put in a fresh stream first, then read once through EventListener + RedisStreamConsumer
(group created at the stream's start), once by a hand-written loop: XREADGROUP COUNT 100,
decode the envelope with pydantic_core.from_json, validate the body with pydantic, XACK each
entry. Each side's time runs from starting to consume until the last event was handled.

Publish: emit() one at a time vs XADD awaited one at a time; emit_many() in batches of 1000
vs a redis-py pipeline of 1000 XADDs. Both serialize the same envelope with pydantic.

Rounds alternate which side goes first; medians are printed.

    scripts/brokers start redis
    .venv/bin/python benchmarks/redis_throughput.py [--events 20000] [--rounds 5] [--publish 5000]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator

import pydantic_core
import redis.asyncio as aioredis
from side_by_side import (
    arguments,
    compare,
    emit_timed,
    event_class,
    make_event,
    print_header,
    raw_envelope,
)
from workload import UserRegistered

from dispytch import Event, EventBase, EventListener
from dispytch.redis import RedisStreamConsumer, RedisStreamProducer

URL = os.environ.get("DISPYTCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TOPIC = "bench.users"
BATCH = 100
HEADERS = json.dumps({"content-type": "application/json"}).encode()


UserRegisteredEvent = event_class(TOPIC)


def raw_fields(event: EventBase) -> dict[bytes, bytes]:
    return {b"v": raw_envelope(event), b"h": HEADERS}


class Stream:
    """A fresh stream per measurement, deleted afterwards."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.topic = TOPIC  # one measurement at a time: emptied before and after each
        self.group = f"group-{uuid.uuid4().hex[:8]}"

    async def setup(self, events: int) -> None:
        await self.teardown()
        for start in range(0, events, 1000):
            pipe = self.client.pipeline(transaction=False)
            for n in range(start, min(events, start + 1000)):
                pipe.xadd(self.topic, raw_fields(make_event(UserRegisteredEvent, n)))  # type: ignore[arg-type]
            await pipe.execute()

    async def teardown(self) -> None:
        await self.client.delete(self.topic, f"dispytch:retry:{self.group}")


async def consume_dispytch(stream: Stream, events: int) -> float:
    done = asyncio.Event()
    count = 0
    consumer = RedisStreamConsumer.create(URL, stream.group, [stream.topic])
    listener = EventListener(consumer, max_concurrency=BATCH, topic_delimiter=".")

    @listener.handler(topic=stream.topic, event="user_registered")
    async def handle(event: Event[UserRegistered]) -> None:
        nonlocal count
        count += 1
        if count == events:
            done.set()

    started = time.perf_counter()
    async with listener:
        await done.wait()
        elapsed = time.perf_counter() - started
    return elapsed


async def consume_raw(stream: Stream, events: int) -> float:
    client = aioredis.Redis.from_url(URL)
    await client.xgroup_create(stream.topic, stream.group, "0", mkstream=True)
    count = 0
    started = time.perf_counter()
    while count < events:
        read = await client.xreadgroup(
            stream.group, "raw", {stream.topic: ">"}, count=BATCH, block=1000
        )
        for _, entries in read or ():
            for entry_id, fields in entries:
                envelope = pydantic_core.from_json(fields[b"v"])
                UserRegistered.model_validate(envelope["body"])
                await client.xack(stream.topic, stream.group, entry_id)
                count += 1
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


async def publish_dispytch(stream: Stream, events: int, batch: bool) -> float:
    payload = [make_event(UserRegisteredEvent, n) for n in range(events)]
    return await emit_timed(RedisStreamProducer.create(URL), payload, batch)


async def publish_raw(stream: Stream, events: int, batch: bool) -> float:
    client = aioredis.Redis.from_url(URL)
    payload = [make_event(UserRegisteredEvent, n) for n in range(events)]
    started = time.perf_counter()
    if batch:
        for start in range(0, events, 1000):
            pipe = client.pipeline(transaction=False)
            for event in payload[start : start + 1000]:
                pipe.xadd(stream.topic, raw_fields(event))  # type: ignore[arg-type]
            await pipe.execute()
    else:
        for event in payload:
            await client.xadd(stream.topic, raw_fields(event))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


@contextlib.asynccontextmanager
async def fresh_streams(client: aioredis.Redis, preload: int) -> AsyncIterator[Stream]:
    stream = Stream(client)
    await stream.setup(preload)
    try:
        yield stream
    finally:
        await stream.teardown()


async def main() -> None:
    args = arguments(__doc__ or "")
    print_header(f"Redis at {URL}", args.rounds, "redis-py")
    n, p = args.events, args.publish
    client = aioredis.Redis.from_url(URL)
    try:
        await compare(
            "consume (ack each)",
            n,
            args.rounds,
            {"dispytch": lambda s: consume_dispytch(s, n), "redis-py": lambda s: consume_raw(s, n)},
            lambda: fresh_streams(client, n),
        )
        for label, batch in (("publish one at a time", False), ("publish batches of 1000", True)):
            await compare(
                label,
                p,
                args.rounds,
                {
                    "dispytch": lambda s, b=batch: publish_dispytch(s, p, b),  # type: ignore[misc]
                    "redis-py": lambda s, b=batch: publish_raw(s, p, b),  # type: ignore[misc]
                },
                lambda: fresh_streams(client, 0),
            )
    finally:
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
