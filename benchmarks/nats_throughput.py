"""NATS JetStream throughput: Dispytch against hand-written nats-py code doing the same work.

Consume: EVENTS events (the 0.10 JSON envelope) are put in a fresh stream first, then read
once through EventListener + NatsConsumer, once by a hand-written nats-py loop on a durable
pull consumer that does the same work per event: fetch batches of 100, decode the envelope
with pydantic_core.from_json, validate the body with pydantic, ack each message. Both sides
use explicit acks on a durable pull consumer; the listener runs up to 100 handlers at once
(its default max_concurrency). Each side's time runs from starting to consume until the last
event was handled.

Publish: emit() one at a time vs JetStream publish() awaited one at a time; emit_many() vs
publishing every message of a batch concurrently and awaiting all acks. Both wait for the
stream's acknowledgement of every message.

Rounds alternate which side goes first; medians are printed.

    scripts/brokers start nats
    .venv/bin/python benchmarks/nats_throughput.py [--events 20000] [--rounds 5] \
        [--publish 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable

import nats
import pydantic_core
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from workload import UserRegistered, envelope, user

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.nats import JetStreamTopology, NatsConsumer, NatsProducer

URL = os.environ.get("DISPYTCH_NATS_URL", "nats://127.0.0.1:4222")
TOPIC = "bench.users"
TOPOLOGY = JetStreamTopology(stream="DISPYTCH_BENCH", subjects=("bench.>",))
BATCH = 100


class UserRegisteredEvent(EventBase):
    __topic__ = TOPIC
    __event_type__ = "user_registered"

    user: dict[str, object]
    timestamp: int


def make_event(n: int) -> UserRegisteredEvent:
    return UserRegisteredEvent(user=user(n).model_dump(), timestamp=n)


async def setup(events: int) -> None:
    client = await nats.connect(URL)
    js = client.jetstream()
    await teardown()
    await js.add_stream(StreamConfig(name=TOPOLOGY.stream, subjects=list(TOPOLOGY.subjects or ())))
    headers = {"content-type": "application/json"}
    for start in range(0, events, 1000):
        await asyncio.gather(
            *(
                js.publish(TOPIC, envelope(n), headers=headers)
                for n in range(start, min(events, start + 1000))
            )
        )
    await client.close()


async def teardown() -> None:
    client = await nats.connect(URL)
    js = client.jetstream()
    for stream in (TOPOLOGY.stream, TOPOLOGY.dead_letter_stream, TOPOLOGY.retry_stream):
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
    await client.close()


async def consume_dispytch(events: int) -> float:
    done = asyncio.Event()
    count = 0
    listener = EventListener(NatsConsumer(URL, "group", topology=TOPOLOGY, batch_size=BATCH))

    @listener.handler(topic=TOPIC, event="user_registered")
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


async def consume_raw(events: int) -> float:
    client = await nats.connect(URL)
    js = client.jetstream()
    await js.add_consumer(
        TOPOLOGY.stream,
        ConsumerConfig(durable_name="raw", filter_subject=TOPIC, ack_policy=AckPolicy.EXPLICIT),
    )
    pull = await js.pull_subscribe_bind(durable="raw", stream=TOPOLOGY.stream)
    count = 0
    started = time.perf_counter()
    while count < events:
        try:
            messages = await pull.fetch(BATCH, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        for message in messages:
            payload = pydantic_core.from_json(message.data)
            UserRegistered.model_validate(payload["body"])
            await message.ack()
            count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def publish_dispytch(events: int, batch: bool) -> float:
    async with EventEmitter(NatsProducer(URL)) as emitter:
        payload = [make_event(n) for n in range(events)]
        started = time.perf_counter()
        if batch:
            for start in range(0, events, 1000):
                await emitter.emit_many(payload[start : start + 1000])
        else:
            for event in payload:
                await emitter.emit(event)
        return time.perf_counter() - started


async def publish_raw(events: int, batch: bool) -> float:
    client = await nats.connect(URL)
    js = client.jetstream()
    payload = [make_event(n) for n in range(events)]
    headers = {"content-type": "application/json"}

    def encoded(event: UserRegisteredEvent) -> bytes:
        return pydantic_core.to_json(
            {"id": "x", "type": "user_registered", "body": event.model_dump(mode="json")}
        )

    started = time.perf_counter()
    if batch:
        for start in range(0, events, 1000):
            await asyncio.gather(
                *(
                    js.publish(TOPIC, encoded(e), headers=headers)
                    for e in payload[start : start + 1000]
                )
            )
    else:
        for event in payload:
            await js.publish(TOPIC, encoded(event), headers=headers)
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


Measure = Callable[[], Awaitable[float]]


async def compare(
    name: str, events: int, rounds: int, sides: dict[str, Measure], preload: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {side: [] for side in sides}
    for round_ in range(rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            await setup(preload)
            try:
                times[side].append(await sides[side]())
            finally:
                await teardown()
    medians = {side: statistics.median(values) for side, values in times.items()}
    d, r = medians["dispytch"], medians["nats-py"]
    print(f"{name:<28} {events:>7} {events / d:>12,.0f} {events / r:>12,.0f} {r / d:>8.2f}")
    return medians


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events to consume")
    parser.add_argument("--publish", type=int, default=5000, help="events to publish")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"NATS at {URL}, {args.rounds} rounds, medians; ratio = dispytch / nats-py rate")
    print(f"{'scenario':<28} {'events':>7} {'dispytch/s':>12} {'nats-py/s':>12} {'ratio':>8}")
    n, p = args.events, args.publish
    await compare(
        "consume (ack each)",
        n,
        args.rounds,
        {"dispytch": lambda: consume_dispytch(n), "nats-py": lambda: consume_raw(n)},
        preload=n,
    )
    await compare(
        "publish one at a time",
        p,
        args.rounds,
        {
            "dispytch": lambda: publish_dispytch(p, batch=False),
            "nats-py": lambda: publish_raw(p, batch=False),
        },
        preload=0,
    )
    await compare(
        "publish batches of 1000",
        p,
        args.rounds,
        {
            "dispytch": lambda: publish_dispytch(p, batch=True),
            "nats-py": lambda: publish_raw(p, batch=True),
        },
        preload=0,
    )


if __name__ == "__main__":
    asyncio.run(main())
