"""Fixtures for the RabbitMQ backend's tests: they run against the real broker.

The broker is found at DISPYTCH_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/);
`scripts/brokers start rabbitmq` starts it. When it is unreachable the tests skip, or fail
under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

aio_pika = pytest.importorskip("aio_pika")

from dispytch.rabbitmq.topology import Topology  # noqa: E402

RABBITMQ_URL = os.environ.get("DISPYTCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
T = TypeVar("T")


def _reachable(url: str) -> str | None:
    async def probe() -> None:
        connection = await aio_pika.connect(url, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as error:
        return repr(error)
    return None


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    problem = _reachable(RABBITMQ_URL)
    if problem is not None:
        message = f"RabbitMQ is not reachable at {RABBITMQ_URL} ({problem}); "
        message += "start it with scripts/brokers start rabbitmq"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return RABBITMQ_URL


class Names:
    """Unique names for one test; what they name is deleted after the test."""

    def __init__(self) -> None:
        self.prefix = f"t-{uuid.uuid4().hex[:12]}"
        self.exchanges: set[str] = set()
        self.queues: set[str] = set()

    def topology(self) -> Topology:
        topology = Topology(self.prefix)
        self.exchanges.update({topology.exchange, topology.dead_letter_exchange})
        self.queues.add(topology.dead_letter_queue)
        return topology

    def group(self, name: str) -> str:
        self.queues.add(Topology(self.prefix).queue(name))
        return name

    def exchange(self, suffix: str) -> str:
        name = f"{self.prefix}.{suffix}"
        self.exchanges.add(name)
        return name

    def queue(self, suffix: str) -> str:
        name = f"{self.prefix}.{suffix}"
        self.queues.add(name)
        return name


@pytest.fixture
async def names(rabbitmq_url: str) -> AsyncIterator[Names]:
    created = Names()
    yield created
    connection = await aio_pika.connect(rabbitmq_url, timeout=10)
    try:
        for queue in created.queues:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(queue)
                await channel.close()
        for exchange in created.exchanges:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.exchange_delete(exchange)
                await channel.close()
    finally:
        await connection.close()


@pytest.fixture
async def admin(rabbitmq_url: str) -> AsyncIterator[Any]:
    """A plain aio-pika channel for setting up and inspecting the broker."""
    connection = await aio_pika.connect(rabbitmq_url, timeout=10)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Poll `probe` until it returns something other than None, within `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"nothing within {timeout}s")
        await asyncio.sleep(interval)


async def get_messages(channel: Any, queue: str, count: int, timeout: float = 10.0) -> list[Any]:
    """Take `count` messages from `queue` (basic.get, acked), waiting up to `timeout`."""
    taken: list[Any] = []

    source = await channel.get_queue(queue)

    async def probe() -> list[Any] | None:
        while len(taken) < count:
            got = await source.get(fail=False, no_ack=True)
            if got is None:
                return None
            taken.append(got)
        return taken

    return await eventually(probe, timeout)
