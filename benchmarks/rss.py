"""Memory over a long run: the resident set size while a listener handles EVENTS events.

A feeder in this process publishes the workload's events in chunks of 10,000 with the
broker's own client (batched: a pipeline, gathered acks) and waits until the listener has
handled one chunk before it sends the next (so the backlog, and what the clients buffer, stay
bounded); every 100,000 handled events the RSS is printed, after a full garbage collection.
A flat line after the first samples (the clients' buffers filling up) is the goal; growth
that goes on with the number of events is a leak. Every backend runs through the same
driver (`measure`); a backend only says how to publish a chunk and which consumer to use.

`--trace N` starts tracemalloc and prints, at every sample after the first, the N source
lines whose allocations grew most since the previous sample: where a leak is kept.

The Redis stream is capped (XADD MAXLEN) and the NATS stream holds at most a few chunks
(max_msgs), so the servers do not keep a million messages either.

    .venv/bin/python benchmarks/rss.py --backend memory|kafka|rabbitmq|redis|nats \
        [--events 1000000] [--trace 15 [--frames 8]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import nats
import psutil
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from kafka_throughput import BOOTSTRAP, PRODUCER_OPTIONS, create_topic
from nats.js.api import StreamConfig
from rabbitmq_throughput import TOPIC as RABBITMQ_TOPIC
from rabbitmq_throughput import URL as RABBITMQ_URL
from rabbitmq_throughput import Broker
from workload import UserRegistered, envelope

from dispytch import Event, EventListener, InMemoryBroker
from dispytch.backends.base import Consumer, OutgoingMessage
from dispytch.kafka import KafkaConsumer
from dispytch.nats import JetStreamTopology, NatsConsumer
from dispytch.rabbitmq import RabbitMQConsumer
from dispytch.redis import RedisStreamConsumer

REDIS_URL = os.environ.get("DISPYTCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("DISPYTCH_NATS_URL", "nats://127.0.0.1:4222")
CHUNK = 10_000
SAMPLE_EVERY = 100_000
#: messages a server keeps of the run's stream: a chunk in flight, one being sent, slack
KEPT_ON_SERVER = 3 * CHUNK
JSON_HEADERS = {"content-type": "application/json"}

#: publishes a chunk of payloads
Feed = Callable[[list[bytes]], Awaitable[None]]
#: what a backend gives the driver: its consumer, the handler's topic, and the feed
Setup = tuple[Consumer, str, Feed]


class Tracer:
    """With `top` > 0: tracemalloc on, and the lines that grew most between samples (the
    call stacks of `frames` lines that did, when `frames` > 1)."""

    def __init__(self, top: int, frames: int = 1) -> None:
        self.top = top
        self.frames = frames
        self.previous: tracemalloc.Snapshot | None = None
        if top:
            tracemalloc.start(frames)

    def sample(self) -> None:
        if not self.top:
            return
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        if self.previous is not None:
            key = "traceback" if self.frames > 1 else "lineno"
            for stat in snapshot.compare_to(self.previous, key)[: self.top]:
                print(f"{'':>14}{stat}")
                if self.frames > 1:
                    for line in stat.traceback.format(most_recent_first=True):
                        print(f"{'':>16}{line}")
        self.previous = snapshot


async def measure(setup: Setup, total: int, tracer: Tracer) -> None:
    consumer, topic, feed = setup
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
    print(f"{'handled':>12} {'RSS MiB':>9} {'seconds':>8}", flush=True)
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
                elapsed = time.perf_counter() - started
                print(f"{handled:>12,} {rss:>9.1f} {elapsed:>8.0f}", flush=True)
                tracer.sample()
        target[0] = sent
        caught_up.clear()
        if handled < sent:
            await caught_up.wait()
    gc.collect()
    print(f"{handled:>12,} {process.memory_info().rss / 2**20:>9.1f}  (stopped)")


@contextlib.asynccontextmanager
async def memory() -> AsyncIterator[Setup]:
    broker = InMemoryBroker()

    async def feed(payloads: list[bytes]) -> None:
        for payload in payloads:
            broker.publish(OutgoingMessage("users", payload))

    yield broker.consumer("rss"), "users", feed


@contextlib.asynccontextmanager
async def kafka() -> AsyncIterator[Setup]:
    topic = await create_topic(4)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, **PRODUCER_OPTIONS)
    await producer.start()

    async def feed(payloads: list[bytes]) -> None:
        futures = [await producer.send(topic, payload) for payload in payloads]
        await asyncio.gather(*futures)

    try:
        yield KafkaConsumer.create(BOOTSTRAP, f"rss-{uuid.uuid4().hex}"), topic, feed
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def rabbitmq() -> AsyncIterator[Setup]:
    connection = await aio_pika.connect(RABBITMQ_URL)
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
        consumer = RabbitMQConsumer.create(RABBITMQ_URL, "group", exchange=broker.prefix)
        yield consumer, RABBITMQ_TOPIC, feed
    finally:
        await broker.teardown()
        await connection.close()


@contextlib.asynccontextmanager
async def redis() -> AsyncIterator[Setup]:
    client = aioredis.Redis.from_url(REDIS_URL)
    run = uuid.uuid4().hex[:8]
    stream, group = f"rss:{run}", f"rss-{run}"
    headers = json.dumps(JSON_HEADERS).encode()

    async def feed(payloads: list[bytes]) -> None:
        pipe = client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(stream, {b"v": payload, b"h": headers}, maxlen=KEPT_ON_SERVER)
        await pipe.execute()

    try:
        yield RedisStreamConsumer.create(REDIS_URL, group, [stream]), stream, feed
    finally:
        await client.delete(stream, f"dispytch:retry:{group}")
        await client.aclose()


@contextlib.asynccontextmanager
async def nats_jetstream() -> AsyncIterator[Setup]:
    run = uuid.uuid4().hex[:8]
    topology = JetStreamTopology(stream=f"RSS_{run}", subjects=(f"rss{run}.>",))
    subject = f"rss{run}.users"
    client = await nats.connect(NATS_URL)
    js = client.jetstream()
    # created here, capped; the consumer finds it with the subjects it expects
    await js.add_stream(
        StreamConfig(
            name=topology.stream, subjects=list(topology.subjects or ()), max_msgs=KEPT_ON_SERVER
        )
    )

    async def feed(payloads: list[bytes]) -> None:
        for first in range(0, len(payloads), 1000):
            await asyncio.gather(
                *(
                    js.publish(subject, payload, headers=JSON_HEADERS)
                    for payload in payloads[first : first + 1000]
                )
            )

    try:
        consumer = NatsConsumer(NATS_URL, "rss", topology=topology)
        yield consumer, subject.replace(".", ":"), feed
    finally:
        for name in (topology.stream, topology.dead_letter_stream, topology.retry_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
        await client.close()


BACKENDS = {
    "memory": memory,
    "kafka": kafka,
    "rabbitmq": rabbitmq,
    "redis": redis,
    "nats": nats_jetstream,
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backend", choices=tuple(BACKENDS), default="memory")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--trace", type=int, default=0, help="print the N lines that grew most (tracemalloc)"
    )
    parser.add_argument(
        "--frames", type=int, default=1, help="with --trace: group by call stacks this deep"
    )
    args = parser.parse_args()
    print(f"{args.backend}: RSS while handling {args.events:,} events", flush=True)
    tracer = Tracer(args.trace, args.frames)
    async with BACKENDS[args.backend]() as setup:
        await measure(setup, args.events, tracer)


if __name__ == "__main__":
    asyncio.run(main())
