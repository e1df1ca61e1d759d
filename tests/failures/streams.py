"""One test's stream: a unique topic and consumer group on one backend, and what the failure
tests need around it: consumers, producers, the worker's arguments, the dead letters, and
whether the group settled everything it received."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from dispytch import EventEmitter, InMemoryBroker
from dispytch.backends.base import Capabilities, Consumer, Producer

from . import clients
from .rabbitmq_queue import queue_messages

Letters = list[tuple[bytes, dict[str, str]]]  # dead letters: (value, headers)
#: how long a test waits for dead letters beyond those it expects, to be sure there are none
NO_MORE_WAIT = 1.0


def broker_problem(backend: str) -> str | None:
    """Why the backend's broker cannot be used (None: it answers)."""
    if backend == "memory":
        return None
    if backend == "kafka":
        host, _, port = clients.KAFKA_BOOTSTRAP.split(",")[0].strip().rpartition(":")
        address = (host or "127.0.0.1", int(port))
    elif backend == "nats":
        url = urlsplit(clients.NATS_URL)
        address = (url.hostname or "127.0.0.1", url.port or 4222)
    else:
        url = urlsplit(clients.REDIS_URL if backend == "redis" else clients.RABBITMQ_URL)
        address = (url.hostname or "127.0.0.1", url.port or (6379 if backend == "redis" else 5672))
    try:
        with socket.create_connection(address, timeout=3):
            return None
    except OSError as error:
        return (
            f"{backend} is not reachable at {address[0]}:{address[1]} ({error}); "
            f"start it with scripts/brokers start {backend}"
        )


def require_broker(backend: str) -> None:
    """Skip (or fail under CI=true) when the backend's broker does not answer."""
    problem = broker_problem(backend)
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(problem)
    pytest.skip(problem)


def new_stream(backend: str) -> Stream:
    """A stream on `backend`; skips the test (fails under CI) when its broker is down."""
    require_broker(backend)
    return stream_for(backend)


def stream_for(backend: str) -> Stream:
    from .nats_stream import NatsStream  # they build on Stream, defined here
    from .redis_stream import RedisStream

    kinds: dict[str, type[Stream]] = {
        "memory": MemoryStream,
        "kafka": KafkaStream,
        "rabbitmq": RabbitMQStream,
        "redis": RedisStream,
        "nats": NatsStream,
    }
    return kinds[backend]()


class Stream(abc.ABC):
    backend: str

    def __init__(self) -> None:
        self.name = f"fail-{uuid.uuid4().hex[:12]}"
        self.topic = self.name
        self.group = f"{self.name}-g"

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    async def prepare(self, partitions: int) -> None:
        """Create what the broker needs before anything is emitted."""

    @abc.abstractmethod
    def consumer(self, group: str | None = None) -> Consumer:
        """A consumer for `group` (default: the stream's), not started."""

    @abc.abstractmethod
    def producer(self) -> Producer:
        """A producer, not started."""

    def emitter(self, timeout: float | None = 30.0) -> EventEmitter:
        return EventEmitter(self.producer(), timeout=timeout)

    def worker_args(self) -> list[str]:
        return ["--backend", self.backend, "--topic", self.topic, "--group", self.group]

    @abc.abstractmethod
    async def dead_letters(self, count: int, timeout: float = 20.0) -> Letters:
        """The first `count` dead letters of the stream's topic; fails when fewer arrive
        within `timeout`, or more than `count` are there."""

    async def assert_no_dead_letters(self) -> None:
        await self.dead_letters(0)

    @abc.abstractmethod
    async def unsettled(self, group: str | None = None) -> int:
        """Messages of the topic that `group` has not settled (call it once its consumers
        are closed)."""

    async def outstanding(self, group: str | None = None) -> int:
        """`unsettled`, counted while the group's consumers run too: what they hold and have
        not settled counts (0 means caught up, see caught_up.py). Kafka (committed offsets
        against end offsets) and the in-memory broker count it that way already."""
        return await self.unsettled(group)

    async def cleanup(self) -> None:
        """Delete what the stream created on the broker."""


class MemoryStream(Stream):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.broker = InMemoryBroker()

    @property
    def capabilities(self) -> Capabilities:
        return self.broker.capabilities

    def consumer(self, group: str | None = None) -> Consumer:
        return self.broker.consumer(group or self.group)

    def producer(self) -> Producer:
        return self.broker.producer()

    def worker_args(self) -> list[str]:
        raise NotImplementedError("the in-memory broker lives in one process")

    async def dead_letters(self, count: int, timeout: float = 20.0) -> Letters:
        topic = self.broker.dead_letter_topic(self.topic)
        reader = self.broker.consumer(f"{self.name}-dlq-reader", [topic])
        await reader.start([])
        letters: Letters = []
        try:
            for _ in range(count):
                delivery = await asyncio.wait_for(reader.receive(), timeout)
                letters.append((delivery.value, dict(delivery.headers)))
                await delivery.ack()
            with contextlib.suppress(asyncio.TimeoutError):
                extra = await asyncio.wait_for(reader.receive(), NO_MORE_WAIT)
                raise AssertionError(f"more dead letters than {count}: {extra.value[:200]!r}")
        finally:
            await reader.close()
        return letters

    async def unsettled(self, group: str | None = None) -> int:
        return self.broker.pending(group or self.group)


class KafkaStream(Stream):
    backend = "kafka"

    @property
    def capabilities(self) -> Capabilities:
        from dispytch.kafka import KAFKA_CAPABILITIES

        return KAFKA_CAPABILITIES

    @property
    def dead_letter_topic(self) -> str:
        return self.topic + ".dlq"

    partitions = 1
    #: the Kafka the stream lives on (tests/cluster use another)
    bootstrap = clients.KAFKA_BOOTSTRAP

    async def prepare(self, partitions: int) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        self.partitions = partitions
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(self.topic, num_partitions=partitions, replication_factor=1),
                    NewTopic(self.dead_letter_topic, num_partitions=1, replication_factor=1),
                ]
            )
        finally:
            await admin.close()
        # wait (bounded) until every partition has a leader
        probe = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await probe.start()
        try:
            deadline = time.monotonic() + 30
            for topic, count in ((self.topic, partitions), (self.dead_letter_topic, 1)):
                while len(await probe.partitions_for(topic) or ()) < count:
                    assert time.monotonic() < deadline, f"topic {topic} has no leaders"
                    await asyncio.sleep(0.1)
        finally:
            await probe.stop()

    def consumer(self, group: str | None = None) -> Consumer:
        return clients.consumer("kafka", group or self.group)

    def producer(self) -> Producer:
        return clients.producer("kafka")

    async def dead_letters(self, count: int, timeout: float = 20.0) -> Letters:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        reader = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        partition = TopicPartition(self.dead_letter_topic, 0)
        reader.assign([partition])
        await reader.start()
        letters: Letters = []
        try:
            await reader.seek_to_beginning(partition)
            deadline = time.monotonic() + timeout
            while len(letters) < count:
                assert time.monotonic() < deadline, f"{len(letters)}/{count} dead letters"
                batches = await reader.getmany(timeout_ms=500)
                for records in batches.values():
                    letters.extend(
                        (record.value or b"", _text_headers(record.headers))
                        for record in records
                    )
            await asyncio.sleep(NO_MORE_WAIT)
            end = (await reader.end_offsets([partition]))[partition]
            assert end == count, f"{end} dead letters on {self.dead_letter_topic}, not {count}"
        finally:
            await reader.stop()
        return letters[:count]

    async def unsettled(self, group: str | None = None) -> int:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        partitions = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await admin.start()
        await reader.start()
        try:
            committed = await admin.list_consumer_group_offsets(group or self.group)
            ends = await reader.end_offsets(partitions)
        finally:
            await reader.stop()
            await admin.close()
        behind = 0
        for tp in partitions:
            done = committed.get(tp)
            behind += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
        return behind

    async def cleanup(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        with contextlib.suppress(Exception):
            await admin.start()
            for topic in (self.topic, self.dead_letter_topic, self.group + ".retry"):
                with contextlib.suppress(Exception):
                    await admin.delete_topics([topic])
        with contextlib.suppress(Exception):
            await admin.close()


class RabbitMQStream(Stream):
    backend = "rabbitmq"
    url = clients.RABBITMQ_URL  # where tests and cleanup connect (tests/cluster use another)

    def __init__(self) -> None:
        super().__init__()
        #: the stream's own exchange (and so its own dead-letter exchange and queue)
        self.exchange = self.name
        self.groups = {self.group}

    @property
    def capabilities(self) -> Capabilities:
        from dispytch.rabbitmq.consumer import CAPABILITIES

        return CAPABILITIES

    async def prepare(self, partitions: int) -> None:
        await self.declare_group(self.group)

    async def declare_group(self, group: str) -> None:
        """Declare the group's queue and binding (the producer is `mandatory`: messages no
        queue takes are refused, so queues must exist before anything is emitted)."""
        from dispytch.backends.base import Subscription

        self.groups.add(group)
        consumer = self.consumer(group)
        await consumer.start([Subscription.parse(self.topic, ":")])
        await consumer.close()

    def consumer(self, group: str | None = None) -> Consumer:
        self.groups.add(group or self.group)
        return clients.consumer("rabbitmq", group or self.group, self.exchange)

    def producer(self) -> Producer:
        return clients.producer("rabbitmq", self.exchange)

    def worker_args(self) -> list[str]:
        return [*super().worker_args(), "--exchange", self.exchange]

    async def _channel(self) -> Any:
        import aio_pika

        connection = await aio_pika.connect(self.url, timeout=10)
        return connection, await connection.channel()

    async def dead_letters(self, count: int, timeout: float = 20.0) -> Letters:
        from dispytch.rabbitmq.headers import to_text_headers

        connection, channel = await self._channel()
        letters: Letters = []
        try:
            queue = await channel.get_queue(f"{self.exchange}.dlq")
            deadline = time.monotonic() + timeout
            while len(letters) < count:
                message = await queue.get(fail=False, no_ack=True)
                if message is None:
                    assert time.monotonic() < deadline, f"{len(letters)}/{count} dead letters"
                    await asyncio.sleep(0.05)
                    continue
                letters.append((message.body, to_text_headers(message.headers)))
            await asyncio.sleep(NO_MORE_WAIT)
            extra = await queue.get(fail=False, no_ack=True)
            assert extra is None, f"more dead letters than {count}: {extra.body[:200]!r}"
        finally:
            await connection.close()
        return letters

    async def unsettled(self, group: str | None = None) -> int:
        from dispytch.rabbitmq.topology import Topology

        connection, channel = await self._channel()
        try:
            name = Topology(self.exchange).queue(group or self.group)
            queue = await channel.declare_queue(name, passive=True)
            return int(queue.declaration_result.message_count or 0)
        finally:
            await connection.close()

    async def outstanding(self, group: str | None = None) -> int:
        from dispytch.rabbitmq.topology import Topology

        queue = Topology(self.exchange).queue(group or self.group)
        ready, unacknowledged = await queue_messages(queue)
        return ready + unacknowledged

    async def cleanup(self) -> None:
        import aio_pika

        from dispytch.rabbitmq.topology import Topology

        topology = Topology(self.exchange)
        queues = [topology.queue(g) for g in self.groups] + [topology.dead_letter_queue]
        with contextlib.suppress(Exception):
            connection = await aio_pika.connect(self.url, timeout=10)
            try:
                for queue in queues:
                    with contextlib.suppress(Exception):
                        channel = await connection.channel()
                        await channel.queue_delete(queue)
                for exchange in (topology.exchange, topology.dead_letter_exchange):
                    with contextlib.suppress(Exception):
                        channel = await connection.channel()
                        await channel.exchange_delete(exchange)
            finally:
                await connection.close()


def _text_headers(raw: Any) -> dict[str, str]:
    decoded = (bytes(value or b"").decode("utf-8", "replace") for _, value in (raw or ()))
    return dict(zip((name for name, _ in (raw or ())), decoded, strict=True))
