"""Fixtures for the schema formats' tests: the real schema registry, and a harness per broker
(in-memory, Kafka, RabbitMQ), since the registry is independent of the broker.

Tests that need the registry take `registry_url`; when it does not answer they skip, except
under CI=true where they fail (CI must run them). `scripts/brokers start schema-registry`
starts it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dispytch.backends.base import Consumer, Producer
from dispytch.kafka import KAFKA_CAPABILITIES, KafkaConsumer, KafkaProducer
from dispytch.memory import InMemoryBroker
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer
from dispytch.rabbitmq.consumer import CAPABILITIES as RABBITMQ_CAPABILITIES
from dispytch.rabbitmq.headers import to_text_headers
from dispytch.testing.conformance import BackendHarness, new_name
from tests.kafka.conftest import NewTopicFactory, bootstrap, new_topic  # noqa: F401
from tests.kafka.kafka_helpers import read_topic
from tests.memory.test_conformance import memory_harness
from tests.rabbitmq.conftest import Names, admin, get_messages, names, rabbitmq_url  # noqa: F401

DeadLetters = list[tuple[bytes, dict[str, str]]]

REGISTRY_URL = os.environ.get(
    "DISPYTCH_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"
)


def _problem(url: str) -> str | None:
    try:
        answer = httpx.get(url + "/subjects", timeout=5)
    except httpx.HTTPError as error:
        return repr(error)
    return None if answer.status_code == 200 else f"HTTP {answer.status_code}"


@pytest.fixture(scope="session")
def registry_url() -> str:
    problem = _problem(REGISTRY_URL)
    if problem is not None:
        message = f"the schema registry is not reachable at {REGISTRY_URL} ({problem}); "
        message += "start it with scripts/brokers start schema-registry"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REGISTRY_URL


@pytest.fixture
def unique() -> Callable[[str], str]:
    """`unique("users")`: a name no other test uses (topics, subjects, record names)."""
    return lambda prefix: f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(
    params=[
        "memory",
        pytest.param("kafka", marks=pytest.mark.kafka),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
def harness(request: pytest.FixtureRequest) -> BackendHarness:
    """A broker harness (see dispytch.testing.harness) for each backend in turn."""
    if request.param == "memory":
        return memory_harness(InMemoryBroker())
    if request.param == "kafka":
        return kafka_harness(
            request.getfixturevalue("bootstrap"), request.getfixturevalue("new_topic")
        )
    return rabbitmq_harness(
        request.getfixturevalue("rabbitmq_url"),
        request.getfixturevalue("names"),
        request.getfixturevalue("admin"),
    )


def kafka_harness(servers: str, make_topic: NewTopicFactory) -> BackendHarness:
    async def topic() -> str:
        return await make_topic(partitions=2, prefix="schemas")

    async def consumer(group: str, topics: list[str]) -> Consumer:
        return KafkaConsumer.create(servers, new_name(group), commit_interval=0.1)

    async def producer() -> Producer:
        return KafkaProducer.create(servers, linger_ms=5)

    async def read_dead_letters(topic: str, count: int, timeout: float) -> DeadLetters:
        records = await read_topic(servers, topic + ".dlq", count, timeout)
        return [
            (value or b"", {name: item.decode() for name, item in headers.items()})
            for value, _, headers in records
        ]

    return BackendHarness(
        "kafka", KAFKA_CAPABILITIES, topic, consumer, producer, read_dead_letters, ".", 30.0
    )


def rabbitmq_harness(url: str, made: Names, channel: Any) -> BackendHarness:
    topology = made.topology()

    async def topic() -> str:
        return f"schemas:{uuid.uuid4().hex[:12]}"

    async def consumer(group: str, topics: list[str]) -> Consumer:
        return RabbitMQConsumer.create(url, made.group(new_name(group)), exchange=topology.exchange)

    async def producer() -> Producer:
        return RabbitMQProducer.create(url, exchange=topology.exchange, mandatory=False)

    async def read_dead_letters(topic: str, count: int, timeout: float) -> DeadLetters:
        letters = await get_messages(channel, topology.dead_letter_queue, count, timeout)
        return [(m.body, to_text_headers(m.headers)) for m in letters]

    return BackendHarness(
        "rabbitmq", RABBITMQ_CAPABILITIES, topic, consumer, producer, read_dead_letters, ":", 10.0
    )
