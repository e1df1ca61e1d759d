"""NATS JetStream throughput: Dispytch against hand-written nats-py code doing the same work.

Consume: EVENTS events (the 0.10 JSON envelope) are put in a fresh stream first, then read
once through EventListener + NatsConsumer, once by a hand-written nats-py loop on a durable
pull consumer that does the same work per event: fetch batches of 100, decode the envelope
with pydantic_core.from_json, validate the body with pydantic, ack each message. Both sides
use explicit acks on a durable pull consumer; the listener runs up to 100 handlers at once
(its default max_concurrency). A second row compares Dispytch with a hand-written push
consumer doing the same work in its message callback (durable, explicit acks,
max_ack_pending 100: the server keeps at most 100 unacked messages in flight, as the pull
sides ask for at most 100). Each side's time runs from starting to consume until the last
event was handled.

Publish: emit() one at a time vs JetStream publish() awaited one at a time; emit_many() vs
publishing every message of a batch concurrently and awaiting all acks. Both serialize the
same envelope (a fresh id and the time each) with pydantic and wait for the stream's
acknowledgement of every message.

Rounds alternate which side goes first; medians are printed.

    scripts/brokers start nats
    .venv/bin/python benchmarks/nats_throughput.py [--events 20000] [--rounds 5] \
        [--publish 5000]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import nats
import pydantic_core
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from side_by_side import (
    arguments,
    compare,
    emit_timed,
    event_class,
    make_event,
    print_header,
    raw_envelope,
)
from workload import UserRegistered, envelope

from dispytch import Event, EventListener
from dispytch.nats import JetStreamTopology, NatsConsumer, NatsProducer

URL = os.environ.get("DISPYTCH_NATS_URL", "nats://127.0.0.1:4222")
TOPIC = "bench.users"
TOPOLOGY = JetStreamTopology(stream="DISPYTCH_BENCH", subjects=("bench.>",))
BATCH = 100


UserRegisteredEvent = event_class(TOPIC)


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


async def consume_raw_push(events: int) -> float:
    client = await nats.connect(URL)
    js = client.jetstream()
    done = asyncio.Event()
    count = 0

    async def on_message(message: Msg) -> None:
        nonlocal count
        payload = pydantic_core.from_json(message.data)
        UserRegistered.model_validate(payload["body"])
        await message.ack()
        count += 1
        if count == events:
            done.set()

    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=BATCH)
    started = time.perf_counter()
    await js.subscribe(
        TOPIC,
        durable="rawpush",
        stream=TOPOLOGY.stream,
        cb=on_message,
        manual_ack=True,
        config=config,
    )
    await done.wait()
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def publish_dispytch(events: int, batch: bool) -> float:
    payload = [make_event(UserRegisteredEvent, n) for n in range(events)]
    return await emit_timed(NatsProducer(URL), payload, batch)


async def publish_raw(events: int, batch: bool) -> float:
    client = await nats.connect(URL)
    js = client.jetstream()
    payload = [make_event(UserRegisteredEvent, n) for n in range(events)]
    headers = {"content-type": "application/json"}
    started = time.perf_counter()
    if batch:
        for start in range(0, events, 1000):
            await asyncio.gather(
                *(
                    js.publish(TOPIC, raw_envelope(e), headers=headers)
                    for e in payload[start : start + 1000]
                )
            )
    else:
        for event in payload:
            await js.publish(TOPIC, raw_envelope(event), headers=headers)
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


@contextlib.asynccontextmanager
async def fresh_stream(preload: int) -> AsyncIterator[None]:
    await setup(preload)
    try:
        yield None
    finally:
        await teardown()


async def main() -> None:
    args = arguments(__doc__ or "")
    print_header(f"NATS at {URL}", args.rounds, "nats-py")
    n, p = args.events, args.publish
    for label, reference in (
        ("consume (pull, ack each)", consume_raw),
        ("consume vs push (ack each)", consume_raw_push),
    ):
        await compare(
            label,
            n,
            args.rounds,
            {"dispytch": lambda _: consume_dispytch(n), "nats-py": lambda _, r=reference: r(n)},
            lambda: fresh_stream(n),
        )
    for label, batch in (("publish one at a time", False), ("publish batches of 1000", True)):
        await compare(
            label,
            p,
            args.rounds,
            {
                "dispytch": lambda _, b=batch: publish_dispytch(p, b),  # type: ignore[misc]
                "nats-py": lambda _, b=batch: publish_raw(p, b),  # type: ignore[misc]
            },
            lambda: fresh_stream(0),
        )


if __name__ == "__main__":
    asyncio.run(main())
