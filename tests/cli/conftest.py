"""Brokers for the dead-letter CLI tests, and a way to make real dead letters on them.

Dead letters are made the way production makes them: an `EventListener` on the backend runs
a handler that always fails (retries=0), so the backend dead-letters every event it gets.
Tests that need a broker skip when it does not answer, and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends import Consumer, Producer
from dispytch.cli._app import cli

KAFKA = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
RABBITMQ = os.environ.get("DISPYTCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
T = TypeVar("T")


def _tcp_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _require(name: str, host: str, port: int) -> None:
    if _tcp_reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port} (start it: scripts/brokers start)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_servers() -> str:
    host, _, port = KAFKA.split(",")[0].rpartition(":")
    _require("Kafka", host or "127.0.0.1", int(port))
    return KAFKA


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(RABBITMQ)
    _require("RabbitMQ", parts.hostname or "127.0.0.1", parts.port or 5672)
    return RABBITMQ


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll `probe` until it returns something other than None, within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"nothing within {timeout}s")
        await asyncio.sleep(interval)


@dataclass
class Events:
    """Event classes bound to one test's topic."""

    placed: type[EventBase]
    cancelled: type[EventBase]


def events_for(topic: str) -> Events:
    class OrderPlaced(EventBase):
        __topic__ = topic
        __event_type__ = "order_placed"
        order_id: str

    class OrderCancelled(EventBase):
        __topic__ = topic
        __event_type__ = "order_cancelled"
        order_id: str

    return Events(OrderPlaced, OrderCancelled)


async def make_dead_letters(
    consumer: Consumer,
    producer: Producer,
    topic: str,
    events: list[EventBase],
    dead_letter_count: Callable[[], Awaitable[int]],
    delimiter: str = ".",
) -> None:
    """Run a listener whose handlers always fail until every event is dead-lettered, one at a
    time: the tests read the letters in the order the events were emitted (keyless events
    handled concurrently could be dead-lettered in any order)."""
    listener = EventListener(consumer, topic_delimiter=delimiter, max_concurrency=1)

    @listener.handler(topic=topic, event="order_placed", retries=0)
    async def place(event: Event) -> None:
        raise ValueError(f"no stock for {event.body['order_id']}")

    @listener.handler(topic=topic, event="order_cancelled", retries=0)
    async def cancel(event: Event) -> None:
        raise KeyError("order unknown")

    emitter = EventEmitter(producer)
    async with listener:
        for event in events:
            await emitter.emit(event)

        async def all_dead() -> bool | None:
            return True if await dead_letter_count() >= len(events) else None

        await eventually(all_dead)
    await producer.close()


async def receive_replayed(
    consumer: Consumer, topic: str, count: int, delimiter: str = "."
) -> list[tuple[str, str, dict[str, str]]]:
    """Run a listener whose handlers succeed until `count` events came: (id, type, headers)."""
    listener = EventListener(consumer, topic_delimiter=delimiter)
    seen: list[tuple[str, str, dict[str, str]]] = []

    @listener.handler(topic=topic, event="order_placed")
    async def place(event: Event) -> None:
        seen.append((event.id, event.type, dict(event.headers)))

    @listener.handler(topic=topic, event="order_cancelled")
    async def cancel(event: Event) -> None:
        seen.append((event.id, event.type, dict(event.headers)))

    async with listener:
        await eventually(lambda: _at_least(seen, count))
    return seen


async def _at_least(seen: list[Any], count: int) -> bool | None:
    return True if len(seen) >= count else None


@pytest.fixture
def dispytch() -> Callable[..., Result]:
    """Run `dispytch ...` in-process (click's CliRunner), separating stdout and stderr."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


REDIS = os.environ.get("DISPYTCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS)
    _require("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    return REDIS
