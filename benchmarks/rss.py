"""Memory over a long run: the resident set size while a listener handles EVENTS events.

A feeder in this process publishes the workload's events in chunks of 10,000 and waits until
the listener has handled one chunk before it sends the next (so the backlog, and what the
client buffers, stay bounded); every 100,000 handled events the RSS is printed, after a full
garbage collection. A flat line after the first samples (the clients' buffers filling up) is
the goal; growth that goes on with the number of events is a leak.

    .venv/bin/python benchmarks/rss.py --backend memory|kafka|rabbitmq [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from collections.abc import Awaitable, Callable

import aio_pika
import psutil
from aiokafka import AIOKafkaProducer
from kafka_throughput import BOOTSTRAP, PRODUCER_OPTIONS, create_topic
from rabbitmq_throughput import TOPIC as RABBITMQ_TOPIC
from rabbitmq_throughput import URL, Broker
from workload import UserRegistered, envelope

from dispytch import Event, EventListener, InMemoryBroker
from dispytch.backends.base import Consumer, OutgoingMessage
from dispytch.kafka import KafkaConsumer
from dispytch.rabbitmq import RabbitMQConsumer

CHUNK = 10_000
SAMPLE_EVERY = 100_000

#: publishes a chunk of payloads
Feed = Callable[[list[bytes]], Awaitable[None]]


async def measure(consumer: Consumer, topic: str, feed: Feed, total: int) -> None:
    process = psutil.Process()
    payloads = [envelope(n) for n in range(CHUNK)]
    handled = 0
    caught_up = asyncio.Event()
    target = [0]
    listener = EventListener(consumer)

    @listener.handler(topic=topic, event="user_registered")
    async def on_user(event: Event[UserRegistered]) -> None:
        nonlocal handled
        handled += 1
        if handled >= target[0]:
            caught_up.set()

    started = time.perf_counter()
    print(f"{'handled':>12} {'RSS MiB':>9} {'seconds':>8}")
    async with listener:
        sent = 0
        while sent < total:
            caught_up.clear()
            target[0] = sent  # the chunk before the one sent now: one chunk in flight at most
            await feed(payloads)
            sent += CHUNK
            await caught_up.wait()
            if sent % SAMPLE_EVERY == 0:
                gc.collect()
                rss = process.memory_info().rss / 2**20
                print(f"{handled:>12,} {rss:>9.1f} {time.perf_counter() - started:>8.0f}")
        target[0] = sent
        caught_up.clear()
        if handled < sent:
            await caught_up.wait()
    gc.collect()
    print(f"{handled:>12,} {process.memory_info().rss / 2**20:>9.1f}  (stopped)")


async def memory(total: int) -> None:
    broker = InMemoryBroker()

    async def feed(payloads: list[bytes]) -> None:
        for payload in payloads:
            broker.publish(OutgoingMessage("users", payload))

    await measure(broker.consumer("rss"), "users", feed, total)


async def kafka(total: int) -> None:
    topic = await create_topic(4)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **PRODUCER_OPTIONS)
    await producer.start()

    async def feed(payloads: list[bytes]) -> None:
        futures = [await producer.send(topic, payload) for payload in payloads]
        await asyncio.gather(*futures)

    try:
        consumer = KafkaConsumer.create(BOOTSTRAP, f"rss-{uuid.uuid4().hex}")
        await measure(consumer, topic, feed, total)
    finally:
        await producer.stop()


async def rabbitmq(total: int) -> None:
    connection = await aio_pika.connect(URL)
    broker = Broker(connection)
    await broker.setup(0)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(broker.prefix)
    routing_key = RABBITMQ_TOPIC.replace(":", ".")

    async def feed(payloads: list[bytes]) -> None:
        for first in range(0, len(payloads), 1000):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(payload, headers={"dispytch-topic": RABBITMQ_TOPIC}),
                        routing_key,
                    )
                    for payload in payloads[first : first + 1000]
                )
            )

    try:
        consumer = RabbitMQConsumer.create(URL, "group", exchange=broker.prefix)
        await measure(consumer, RABBITMQ_TOPIC, feed, total)
    finally:
        await broker.teardown()
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("memory", "kafka", "rabbitmq"), default="memory")
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    backends = {"memory": memory, "kafka": kafka, "rabbitmq": rabbitmq}
    print(f"{args.backend}: RSS while handling {args.events:,} events")
    await backends[args.backend](args.events)


if __name__ == "__main__":
    asyncio.run(main())
