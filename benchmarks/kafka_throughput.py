"""Kafka throughput: Dispytch against hand-written aiokafka code doing the same work.

Consume: EVENTS pre-produced events (the 0.10 JSON envelope, keyless, spread over PARTITIONS
partitions) are read by a fresh consumer group, once through EventListener + KafkaConsumer,
once by a hand-written aiokafka loop that does the same work per event: decode the envelope
with pydantic_core.from_json, validate the body with pydantic, and commit (every 0.5 s, as
Dispytch's default; the hand-written loop handles events one by one, in fetch order).
Each side's total time runs from start() until the last event was handled, so both include
joining the group (and, for Dispytch, creating the group's retry topic: a new group per round).
It is also split in two: start-up (start() until the first event was handled) and steady state
(first event until the last), so start-up costs do not hide the per-event ones.

Publish: emit() one at a time vs AIOKafkaProducer.send_and_wait(); emit_many() vs aiokafka
send() of every record then awaiting all futures. Both sides store the same records (value,
content-type header, timestamp), use acks="all", enable_idempotence=True (Dispytch's defaults)
and linger_ms=5. Dispytch runs twice: owning its client (`KafkaProducer.create`) and with a
client the caller started (the 0.10 style, `KafkaProducer(aiokafka_producer)`).

Rounds alternate between the two sides; medians are printed.

    scripts/brokers start kafka
    .venv/bin/python benchmarks/kafka_throughput.py [--events 20000] [--rounds 5] [--publish 5000]
        [--partitions 4]      (--publish 0: consume only)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic_core
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from workload import User, UserRegistered, envelope, user

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.kafka import KafkaConsumer, KafkaProducer

BOOTSTRAP = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 4
PRODUCER_OPTIONS = {"acks": "all", "enable_idempotence": True, "linger_ms": 5}


async def create_topic(partitions: int) -> str:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def fill(topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **PRODUCER_OPTIONS)
    await producer.start()
    try:
        futures = [await producer.send(topic, envelope(n)) for n in range(count)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# -- consume ---------------------------------------------------------------------------------


#: (start-up, steady state): start() to the first event handled, first to last event handled
Phases = tuple[float, float]


async def consume_dispytch(topic: str, count: int) -> Phases:
    done = asyncio.Event()
    handled = 0
    first = 0.0
    listener = EventListener(KafkaConsumer.create(BOOTSTRAP, f"bench-{uuid.uuid4().hex}"))

    @listener.handler(topic=topic, event="user_registered")
    async def on_user(event: Event[UserRegistered]) -> None:
        nonlocal handled, first
        handled += 1
        if handled == 1:
            first = time.perf_counter()
        if handled == count:
            done.set()

    started = time.perf_counter()
    async with listener:
        await done.wait()
        finished = time.perf_counter()
    return first - started, finished - first


async def consume_by_hand(topic: str, count: int) -> Phases:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"bench-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    handled = 0
    first = 0.0
    started = time.perf_counter()
    await consumer.start()
    last_commit = time.perf_counter()
    try:
        while handled < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                for record in records:
                    payload = pydantic_core.from_json(record.value)
                    if payload["type"] == "user_registered":
                        UserRegistered.model_validate(payload["body"])
                        handled += 1
                        if handled == 1:
                            first = time.perf_counter()
            if time.perf_counter() - last_commit >= 0.5:
                await consumer.commit()
                last_commit = time.perf_counter()
        await consumer.commit()
        finished = time.perf_counter()
        return first - started, finished - first
    finally:
        await consumer.stop()


# -- publish ---------------------------------------------------------------------------------


class UserRegisteredEvent(EventBase):
    __topic__ = "unset"
    __event_type__ = "user_registered"
    user: User
    timestamp: int


def events(topic: str, count: int) -> list[UserRegisteredEvent]:
    cls = type("Bench", (UserRegisteredEvent,), {"__topic__": topic, "__module__": __name__})
    return [cls(user=user(n), timestamp=n) for n in range(count)]


async def publish_dispytch(topic: str, count: int, batched: bool, client: str = "owned") -> float:
    """`client`: "owned" (`KafkaProducer.create`, Dispytch owns the aiokafka client) or "user"
    (the 0.10 style: `KafkaProducer(aiokafka_producer)` with a client the caller started)."""
    batch = events(topic, count)
    user_client = None
    if client == "user":
        user_client = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **PRODUCER_OPTIONS)
        await user_client.start()
        producer = KafkaProducer(user_client)
    else:
        producer = KafkaProducer.create(BOOTSTRAP, linger_ms=5)
    try:
        async with EventEmitter(producer) as emitter:
            started = time.perf_counter()
            if batched:
                await emitter.emit_many(batch)
            else:
                for event in batch:
                    await emitter.emit(event)
            return time.perf_counter() - started
    finally:
        if user_client is not None:
            await user_client.stop()


#: the header Dispytch sends with every record (the wire format's content type): the
#: hand-written side sends it too, so both store the same records
CONTENT_TYPE = [("content-type", b"application/json")]


def record_of(event: UserRegisteredEvent) -> tuple[bytes, int]:
    """The hand-written side's per-event work, the same as the emitter's: dump the body, wrap
    it in the envelope, serialize; and the record's timestamp."""
    timestamp_ms = int(time.time() * 1000)
    envelope = {
        "id": event.id,
        "type": "user_registered",
        "body": event.model_dump(mode="json"),
        "timestamp": timestamp_ms,
    }
    return pydantic_core.to_json(envelope), timestamp_ms


async def publish_by_hand(topic: str, count: int, batched: bool) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **PRODUCER_OPTIONS)
    await producer.start()
    try:
        batch = events(topic, count)
        started = time.perf_counter()
        records = map(record_of, batch)
        if batched:
            futures = [
                await producer.send(topic, value, timestamp_ms=ts, headers=CONTENT_TYPE)
                for value, ts in records
            ]
            await asyncio.gather(*futures)
        else:
            for value, ts in records:
                await producer.send_and_wait(topic, value, timestamp_ms=ts, headers=CONTENT_TYPE)
        return time.perf_counter() - started
    finally:
        await producer.stop()


# -- driver ----------------------------------------------------------------------------------


async def alternate(
    rounds: int,
    dispytch: Callable[[], Awaitable[Any]],
    by_hand: Callable[[], Awaitable[Any]],
) -> tuple[list[Any], list[Any]]:
    """Each side's results, the sides taking turns at going first."""
    ours: list[Any] = []
    theirs: list[Any] = []
    for n in range(rounds):
        first, second = (dispytch, by_hand) if n % 2 == 0 else (by_hand, dispytch)
        for side in (first, second):
            result = await side()
            (ours if side is dispytch else theirs).append(result)
    return ours, theirs


def row(name: str, count: int, ours: float, theirs: float) -> str:
    """Rates from median times, and Dispytch's rate over the hand-written code's."""
    return f"{name:<30} {count / ours:>12,.0f} {count / theirs:>12,.0f} {theirs / ours:>8.2f}"


def medians(results: list[Phases]) -> tuple[float, float, float]:
    """Median start-up, steady state and total time."""
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
        statistics.median(r[0] + r[1] for r in results),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--publish", type=int, default=5_000)
    parser.add_argument("--partitions", type=int, default=PARTITIONS, help="of the consumed topic")
    args = parser.parse_args()

    topic = await create_topic(args.partitions)
    await fill(topic, args.events)
    ours, theirs = await alternate(
        args.rounds,
        lambda: consume_dispytch(topic, args.events),
        lambda: consume_by_hand(topic, args.events),
    )
    out = await create_topic(PARTITIONS)
    publish: dict[str, tuple[int, tuple[list[Any], list[Any]]]] = {}
    publish_rounds = args.rounds if args.publish else 0  # --publish 0: consume only
    for client in ("owned", "user"):
        for batched, count, name in (
            (False, args.publish // 10, "emit"),
            (True, args.publish, "emit_many"),
        ):
            publish[f"{name}, {client} client"] = (
                count,
                await alternate(
                    publish_rounds,
                    lambda c=client, b=batched, n=count: publish_dispytch(out, n, b, c),
                    lambda b=batched, n=count: publish_by_hand(out, n, b),
                ),
            )
    (our_start, our_steady, our_total), (their_start, their_steady, their_total) = (
        medians(ours),
        medians(theirs),
    )
    print(f"Kafka at {BOOTSTRAP}, {args.partitions} partitions, medians of {args.rounds} rounds")
    print(f"{'events/s':<30} {'dispytch':>12} {'aiokafka':>12} {'ratio':>8}")
    print(row("consume (listener), total", args.events, our_total, their_total))
    print(row("consume, steady state", args.events, our_steady, their_steady))
    for name, (count, results) in publish.items():
        if args.publish:
            print(row(name, count, *map(statistics.median, results)))
    print(
        f"start-up (start() to the first event): dispytch {our_start * 1000:.0f} ms, "
        f"aiokafka {their_start * 1000:.0f} ms (a new group each round; no retry topic is "
        "created, as no handler retries later)"
    )
    print("ratio: Dispytch's rate over the hand-written code's (higher is better, 1.00 = equal)")
    print(
        "emit: against send_and_wait; emit_many: against send() of all then awaiting the acks; "
        "owned client: KafkaProducer.create; user client: KafkaProducer(aiokafka_producer)"
    )


if __name__ == "__main__":
    asyncio.run(main())
