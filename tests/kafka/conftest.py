"""Fixtures for the Kafka backend's tests: the broker, fresh topics, plain aiokafka helpers.

Tests that need the broker take the `bootstrap` fixture. When the broker does not answer they
skip, except under CI=true where they fail (CI must run them).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .kafka_helpers import eventually

BOOTSTRAP = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def _reachable(servers: str) -> bool:
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
                return True
        except OSError:
            continue
    return False


@pytest.fixture(scope="session")
def bootstrap() -> str:
    """The broker's bootstrap servers, once it answers."""
    if not _reachable(BOOTSTRAP):
        message = f"Kafka is not reachable at {BOOTSTRAP} (start it: scripts/brokers start kafka)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return BOOTSTRAP


NewTopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def new_topic(bootstrap: str) -> AsyncIterator[NewTopicFactory]:
    """`await new_topic(partitions=1, prefix="t")`: create a uniquely named topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    created: list[str] = []

    async def create(partitions: int = 1, prefix: str = "dispytch-test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        await _wait_for_leaders(bootstrap, name, partitions)
        return name

    try:
        yield create
    finally:
        await admin.close()


async def _has_partitions(producer: AIOKafkaProducer, topic: str, partitions: int) -> bool:
    return len(await producer.partitions_for(topic) or ()) >= partitions


async def _wait_for_leaders(bootstrap: str, topic: str, partitions: int) -> None:
    """Wait (bounded) until the broker reports every partition of a new topic."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await eventually(
            lambda: _has_partitions(producer, topic, partitions), timeout=20, what=topic
        )
    finally:
        await producer.stop()
