"""RabbitMQ throughput: Dispytch against hand-written aio-pika code doing the same work.

Consume: EVENTS events (the 0.10 JSON envelope) are put in a fresh durable queue first, then
read once through EventListener + RabbitMQConsumer, once by a hand-written aio-pika consumer
that does the same work per event: decode the envelope with pydantic_core.from_json, validate
the body with pydantic, ack manually. Both use prefetch 100 (the listener's default
max_concurrency) and run one handler at a time per message. Each side's time runs from
starting to consume until the last event was handled.

Publish: emit() one at a time vs Exchange.publish() awaited one at a time; emit_many() vs
publishing every message concurrently and awaiting all confirms. Both sides use publisher
confirms, persistent messages and mandatory=True (Dispytch's defaults), serialize the same
envelope with pydantic and publish the same message (headers, AMQP timestamp). Dispytch runs
twice: "owned" (`RabbitMQProducer.create`, its own connection) and "user" (the 0.10 style,
`RabbitMQProducer([exchange])` on the caller's channel).

Rounds alternate which side goes first; medians are printed.

    scripts/brokers start rabbitmq
    .venv/bin/python benchmarks/rabbitmq_throughput.py [--events 20000] [--rounds 5] \
        [--publish 5000]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pydantic_core
from side_by_side import Measure, arguments, event_class, print_header
from side_by_side import compare as compare_sides
from side_by_side import make_event as make_event_of
from workload import UserRegistered

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer

URL = os.environ.get("DISPYTCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
TOPIC = "bench:users"
PREFETCH = 100


UserRegisteredEvent = event_class(TOPIC)


def make_event(n: int) -> EventBase:
    return make_event_of(UserRegisteredEvent, n)


def raw_envelope(event: EventBase) -> bytes:
    body = event.model_dump(mode="json")
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "user_registered",
        "body": body,
        "timestamp": int(time.time() * 1000),
    }
    return pydantic_core.to_json(envelope)


def raw_message(event: EventBase) -> aio_pika.Message:
    return aio_pika.Message(
        raw_envelope(event),
        headers={"dispytch-topic": TOPIC},
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


class Broker:
    """A fresh exchange + group queue per measurement, deleted afterwards."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.queue = f"{self.prefix}.group"

    async def setup(self, events: int) -> None:
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(self.prefix, "topic", durable=True)
        queue = await channel.declare_queue(self.queue, durable=True)
        await queue.bind(exchange, TOPIC.replace(":", "."))
        batch = 1000
        for start in range(0, events, batch):
            await asyncio.gather(
                *(
                    exchange.publish(raw_message(make_event(n)), TOPIC.replace(":", "."))
                    for n in range(start, min(events, start + batch))
                )
            )
        await channel.close()

    async def teardown(self) -> None:
        channel = await self.connection.channel()
        for queue in (self.queue, f"{self.prefix}.dlq"):
            await channel.queue_delete(queue)
        for exchange in (self.prefix, f"{self.prefix}.dlx"):
            await channel.exchange_delete(exchange)
        await channel.close()


async def consume_dispytch(broker: Broker, events: int) -> float:
    done = asyncio.Event()
    count = 0
    consumer = RabbitMQConsumer.create(URL, "group", exchange=broker.prefix, prefetch=PREFETCH)
    listener = EventListener(consumer, max_concurrency=PREFETCH)

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


async def consume_raw(broker: Broker, events: int) -> float:
    done = asyncio.Event()
    count = 0
    connection = await aio_pika.connect_robust(URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.declare_queue(broker.queue, durable=True)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal count
        envelope = pydantic_core.from_json(message.body)
        UserRegistered.model_validate(envelope["body"])
        await message.ack()
        count += 1
        if count == events:
            done.set()

    started = time.perf_counter()
    await queue.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - started
    await connection.close()
    return elapsed


async def publish_dispytch(
    broker: Broker, events: int, batch: bool, client: str = "owned"
) -> float:
    """`client`: "owned" (`RabbitMQProducer.create`, Dispytch connects) or "user" (the 0.10
    style: `RabbitMQProducer([exchange])` on the caller's confirming channel)."""
    connection = None
    if client == "user":
        connection = await aio_pika.connect_robust(URL)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(broker.prefix, "topic", durable=True)
        producer = RabbitMQProducer([exchange], topic_delimiter=":")
    else:
        producer = RabbitMQProducer.create(URL, exchange=broker.prefix)
    try:
        async with EventEmitter(producer) as emitter:
            payload = [make_event(n) for n in range(events)]
            started = time.perf_counter()
            if batch:
                for start in range(0, events, 1000):
                    await emitter.emit_many(payload[start : start + 1000])
            else:
                for event in payload:
                    await emitter.emit(event)
            return time.perf_counter() - started
    finally:
        if connection is not None:
            await connection.close()


def published_message(event: UserRegisteredEvent) -> aio_pika.Message:
    """The message Dispytch publishes for `event`: the envelope, the content-type and topic
    headers, persistent, the envelope's timestamp as the AMQP timestamp."""
    timestamp_ms = int(time.time() * 1000)
    envelope = {
        "id": event.id,
        "type": "user_registered",
        "body": event.model_dump(mode="json"),
        "timestamp": timestamp_ms,
    }
    return aio_pika.Message(
        pydantic_core.to_json(envelope),
        headers={"content-type": "application/json", "dispytch-topic": TOPIC},
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        timestamp=timestamp_ms / 1000,
    )


async def publish_raw(broker: Broker, events: int, batch: bool) -> float:
    connection = await aio_pika.connect_robust(URL)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchange = await channel.declare_exchange(broker.prefix, "topic", durable=True)
    payload = [make_event(n) for n in range(events)]
    key = TOPIC.replace(":", ".")
    started = time.perf_counter()
    if batch:
        for start in range(0, events, 1000):
            await asyncio.gather(
                *(
                    exchange.publish(published_message(e), key)
                    for e in payload[start : start + 1000]
                )
            )
    else:
        for event in payload:
            await exchange.publish(published_message(event), key)
    elapsed = time.perf_counter() - started
    await connection.close()
    return elapsed


async def compare(
    name: str, events: int, rounds: int, sides: dict[str, Measure[Broker]], preload: int
) -> dict[str, float]:
    connection = await aio_pika.connect(URL)

    @contextlib.asynccontextmanager
    async def fresh() -> AsyncIterator[Broker]:
        broker = Broker(connection)
        await broker.setup(preload)
        try:
            yield broker
        finally:
            await broker.teardown()

    try:
        return await compare_sides(name, events, rounds, sides, fresh)
    finally:
        await connection.close()


async def main() -> None:
    args = arguments(__doc__ or "")
    print_header(f"RabbitMQ at {URL}", args.rounds, "aio-pika")
    n, p = args.events, args.publish
    await compare(
        "consume (ack each)",
        n,
        args.rounds,
        {"dispytch": lambda b: consume_dispytch(b, n), "aio-pika": lambda b: consume_raw(b, n)},
        preload=n,
    )
    for client in ("owned", "user"):
        for batch, name in ((False, "emit"), (True, "emit_many x1000")):
            await compare(
                f"{name}, {client}",
                p,
                args.rounds,
                {
                    "dispytch": lambda b, c=client, m=batch: publish_dispytch(b, p, m, c),
                    "aio-pika": lambda b, m=batch: publish_raw(b, p, m),
                },
                preload=0,
            )


if __name__ == "__main__":
    asyncio.run(main())
