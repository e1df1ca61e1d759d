"""End-to-end latency at a fixed, moderate rate: Dispytch against the hand-written consumers.

A producer in this process sends EVENTS events at RATE events/s (each event's body carries its
number; the time it was handed to the client is noted), and the consumer under test handles
them: latency is from that send to the handler (Dispytch) or, by hand, to the same point: the
event decoded and validated, before it is acked or committed (Dispytch settles after its
handler returns). The consumers are the hand-written ones of `kafka_throughput.py` (getmany, decode,
validate, commit every 0.5 s) and `rabbitmq_throughput.py` (aio-pika, prefetch 100, decode,
validate, ack each), and Dispytch's listener on the same broker. Each side is measured on a
fresh topic or queue; rounds alternate which side goes first. Printed: median over rounds of
each round's p50 and p99, in milliseconds.

    .venv/bin/python benchmarks/latency.py [--backend kafka|rabbitmq|both] [--rate 2000]
        [--events 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import aio_pika
import pydantic_core
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka_throughput import BOOTSTRAP, PRODUCER_OPTIONS, create_topic
from rabbitmq_throughput import PREFETCH, TOPIC, URL, Broker, make_event, raw_message
from workload import UserRegistered, envelope

from dispytch import Event, EventListener
from dispytch.kafka import KafkaConsumer
from dispytch.rabbitmq import RabbitMQConsumer


class Clock:
    """Send times by event number, and the latencies of the events handled."""

    def __init__(self, events: int) -> None:
        self.events = events
        self.sent: list[float] = [0.0] * events
        self.latencies: list[float] = []
        self.done = asyncio.Event()

    def handled(self, number: int) -> None:
        self.latencies.append(time.perf_counter() - self.sent[number])
        if len(self.latencies) == self.events:
            self.done.set()


async def paced(clock: Clock, rate: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Send event n at start + n / rate (catching up without bursts beyond the schedule)."""
    start = time.perf_counter()
    for number in range(clock.events):
        due = start + number / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        clock.sent[number] = time.perf_counter()
        await send(number)


# -- Kafka -----------------------------------------------------------------------------------


async def kafka_side(rate: float, clock: Clock, dispytch: bool) -> list[float]:
    topic = await create_topic(4)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **{**PRODUCER_OPTIONS, "linger_ms": 0})
    await producer.start()
    payloads = [envelope(n) for n in range(clock.events)]

    async def send(number: int) -> None:
        await producer.send(topic, payloads[number])

    try:
        if dispytch:
            await kafka_dispytch(topic, clock, lambda: paced(clock, rate, send))
        else:
            await kafka_by_hand(topic, clock, lambda: paced(clock, rate, send))
    finally:
        await producer.stop()
    return clock.latencies


async def kafka_dispytch(topic: str, clock: Clock, produce: Callable[[], Awaitable[None]]) -> None:
    consumer = KafkaConsumer.create(
        BOOTSTRAP, f"lat-{uuid.uuid4().hex}", auto_offset_reset="earliest"
    )
    listener = EventListener(consumer)

    @listener.handler(topic=topic, event="user_registered")
    async def on_user(event: Event[UserRegistered]) -> None:
        clock.handled(event.body.timestamp)

    async with listener:
        await wait_assigned(consumer.client)
        await produce()
        await clock.done.wait()


async def kafka_by_hand(topic: str, clock: Clock, produce: Callable[[], Awaitable[None]]) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"lat-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()

    async def loop() -> None:
        last_commit = time.perf_counter()
        while not clock.done.is_set():
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                for record in records:
                    payload = pydantic_core.from_json(record.value)
                    if payload["type"] == "user_registered":
                        body = UserRegistered.model_validate(payload["body"])
                        clock.handled(body.timestamp)
            if time.perf_counter() - last_commit >= 0.5:
                await consumer.commit()
                last_commit = time.perf_counter()

    try:
        consuming = asyncio.create_task(loop())
        await wait_assigned(consumer)
        await produce()
        await clock.done.wait()
        await consuming
    finally:
        await consumer.stop()


async def wait_assigned(client: AIOKafkaConsumer | None, timeout: float = 30.0) -> None:
    """Until the group gave the client its partitions (events sent before are not read)."""
    deadline = time.monotonic() + timeout
    while client is None or not client.assignment():
        if time.monotonic() > deadline:
            raise TimeoutError("no partitions assigned")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the first fetch position is resolved after the assignment


# -- RabbitMQ --------------------------------------------------------------------------------


async def rabbitmq_side(rate: float, clock: Clock, dispytch: bool) -> list[float]:
    connection = await aio_pika.connect(URL)
    broker = Broker(connection)
    await broker.setup(0)
    channel = await connection.channel(publisher_confirms=False)
    exchange = await channel.get_exchange(broker.prefix)
    messages = [raw_message(make_event(n)) for n in range(clock.events)]

    async def send(number: int) -> None:
        await exchange.publish(messages[number], TOPIC.replace(":", "."))

    try:
        if dispytch:
            await rabbitmq_dispytch(broker, clock, lambda: paced(clock, rate, send))
        else:
            await rabbitmq_by_hand(broker, clock, lambda: paced(clock, rate, send))
    finally:
        await broker.teardown()
        await connection.close()
    return clock.latencies


async def rabbitmq_dispytch(
    broker: Broker, clock: Clock, produce: Callable[[], Awaitable[None]]
) -> None:
    consumer = RabbitMQConsumer.create(URL, "group", exchange=broker.prefix, prefetch=PREFETCH)
    listener = EventListener(consumer, max_concurrency=PREFETCH)

    @listener.handler(topic=TOPIC, event="user_registered")
    async def handle(event: Event[UserRegistered]) -> None:
        clock.handled(event.body.timestamp)

    async with listener:
        await produce()
        await clock.done.wait()


async def rabbitmq_by_hand(
    broker: Broker, clock: Clock, produce: Callable[[], Awaitable[None]]
) -> None:
    connection = await aio_pika.connect_robust(URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.declare_queue(broker.queue, durable=True)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        payload = pydantic_core.from_json(message.body)
        body = UserRegistered.model_validate(payload["body"])
        clock.handled(body.timestamp)  # where Dispytch calls its handler: before the ack
        await message.ack()

    await queue.consume(on_message)
    try:
        await produce()
        await clock.done.wait()
    finally:
        await connection.close()


# -- driver ----------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def compare(backend: str, rate: float, events: int, rounds: int) -> None:
    measure = kafka_side if backend == "kafka" else rabbitmq_side
    hand = "aiokafka" if backend == "kafka" else "aio-pika"
    results: dict[str, list[tuple[float, float]]] = {"dispytch": [], hand: []}
    for round_ in range(rounds):
        order = [True, False] if round_ % 2 == 0 else [False, True]
        for dispytch in order:
            latencies = await measure(rate, Clock(events), dispytch)
            results["dispytch" if dispytch else hand].append(
                (percentile(latencies, 0.5), percentile(latencies, 0.99))
            )
    print(f"{backend}: {events} events at {rate:,.0f}/s, {rounds} rounds (median of rounds), ms")
    for side, values in results.items():
        p50 = statistics.median(v[0] for v in values) * 1000
        p99 = statistics.median(v[1] for v in values) * 1000
        print(f"  {side:<10} p50 {p50:>8.2f}   p99 {p99:>8.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("kafka", "rabbitmq", "both"), default="both")
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for backend in ("kafka", "rabbitmq") if args.backend == "both" else (args.backend,):
        await compare(backend, args.rate, args.events, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
