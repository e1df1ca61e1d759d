"""NATS JetStream: push or pull consumer? Three hand-written nats-py consumers doing the same work.

EVENTS events (the 0.10 JSON envelope) are put in a fresh stream, then read by one of:

- `pull fetch`: a durable pull consumer read with nats-py's `fetch(100)`, one batch after
  the other (the idiomatic nats-py loop);
- `pull continuous`: a durable pull consumer asked for 100 messages, and for more each time
  half of them were handled, answered into one inbox subscription (what `NatsConsumer` does);
- `push`: a durable push consumer, `max_ack_pending` 100, messages handled in the
  subscription's callback.

Each decodes the envelope with pydantic_core.from_json, validates the body with pydantic and
acks (explicit acks everywhere); at most 100 messages are unacked at any time on every side.
Rounds alternate the order; medians are printed. The figures and the decision they support
are in docs/backends/nats.md.

    scripts/brokers start nats
    .venv/bin/python benchmarks/nats_push_vs_pull.py [--events 20000] [--rounds 5]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

import nats
import pydantic_core
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats_throughput import TOPIC, TOPOLOGY, URL, setup, teardown
from side_by_side import arguments
from workload import UserRegistered

IN_FLIGHT = 100


def durable(name: str) -> ConsumerConfig:
    return ConsumerConfig(durable_name=name, filter_subject=TOPIC, ack_policy=AckPolicy.EXPLICIT)


def handle(message: Msg) -> None:
    payload = pydantic_core.from_json(message.data)
    UserRegistered.model_validate(payload["body"])


async def pull_fetch(events: int) -> float:
    client = await nats.connect(URL)
    js = client.jetstream()
    await js.add_consumer(TOPOLOGY.stream, durable("fetch"))
    pull = await js.pull_subscribe_bind(durable="fetch", stream=TOPOLOGY.stream)
    count = 0
    started = time.perf_counter()
    while count < events:
        try:
            messages = await pull.fetch(IN_FLIGHT, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        for message in messages:
            handle(message)
            await message.ack()
            count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def pull_continuous(events: int) -> float:
    client = await nats.connect(URL)
    js = client.jetstream()
    await js.add_consumer(TOPOLOGY.stream, durable("cont"))
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{TOPOLOGY.stream}.cont"
    inbox = client.new_inbox()
    done = asyncio.Event()
    count = 0
    asked = 0  # requested and not yet received

    async def ask(batch: int) -> None:
        nonlocal asked
        asked += batch
        request = json.dumps({"batch": batch, "expires": 5_000_000_000}).encode()
        await client.publish(subject, request, reply=inbox)

    async def on_message(message: Msg) -> None:
        nonlocal count, asked
        if not message.reply:  # a status: the request expired, credit what it did not fill
            pending = int((message.headers or {}).get("Nats-Pending-Messages", asked))
            asked -= pending
            if count < events:
                await ask(IN_FLIGHT - asked)
            return
        asked -= 1
        handle(message)
        await message.ack()
        count += 1
        if count == events:
            done.set()
        elif IN_FLIGHT - asked >= IN_FLIGHT // 2:
            await ask(IN_FLIGHT - asked)

    started = time.perf_counter()
    await client.subscribe(inbox, cb=on_message)
    await ask(IN_FLIGHT)
    await done.wait()
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def push(events: int) -> float:
    client = await nats.connect(URL)
    js = client.jetstream()
    done = asyncio.Event()
    count = 0

    async def on_message(message: Msg) -> None:
        nonlocal count
        handle(message)
        await message.ack()
        count += 1
        if count == events:
            done.set()

    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=IN_FLIGHT)
    started = time.perf_counter()
    await js.subscribe(
        TOPIC, durable="push", stream=TOPOLOGY.stream, cb=on_message, manual_ack=True, config=config
    )
    await done.wait()
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def main() -> None:
    args = arguments(__doc__ or "")
    sides: dict[str, Callable[[int], Awaitable[float]]] = {
        "pull fetch": pull_fetch,
        "pull continuous": pull_continuous,
        "push": push,
    }
    times: dict[str, list[float]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            await setup(args.events)
            try:
                times[side].append(await sides[side](args.events))
            finally:
                await teardown()
    print(f"NATS at {URL}, {args.events} events, {args.rounds} rounds, medians")
    for side, values in times.items():
        print(f"{side:<16} {args.events / statistics.median(values):>10,.0f} events/s")


if __name__ == "__main__":
    asyncio.run(main())
