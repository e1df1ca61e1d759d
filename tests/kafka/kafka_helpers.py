"""Plain-aiokafka helpers for the Kafka backend's tests (no Dispytch code on this side)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str = "condition"
) -> None:
    """Poll `check` until it is true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def group_name() -> str:
    return f"dispytch-group-{uuid.uuid4().hex[:12]}"


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    *,
    key: bytes | None = None,
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Store records with a plain aiokafka producer and wait for the acks."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=partition, headers=headers)
            for value in values
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, count: int, timeout: float = 20.0
) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
    """Read `count` records (value, key, headers) from the start of `topic`, no group."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[tuple[bytes | None, bytes | None, dict[str, bytes]]] = []

    async def fill() -> None:
        while len(found) < count:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                found.extend((r.value, r.key, dict(r.headers)) for r in records)

    try:
        await asyncio.wait_for(fill(), timeout)
    finally:
        await consumer.stop()
    return found


async def receive_n(consumer: Any, count: int, timeout: float = 20.0) -> list[Any]:
    """`count` deliveries from a started dispytch consumer, unsettled."""
    received: list[Any] = []

    async def fill() -> None:
        while len(received) < count:
            received.append(await consumer.receive())

    await asyncio.wait_for(fill(), timeout)
    return received


async def receive_none(consumer: Any, within: float) -> list[Any]:
    """Whatever the consumer hands out within `within` seconds (expected: nothing)."""
    received: list[Any] = []

    async def fill() -> None:
        while True:
            received.append(await consumer.receive())

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(fill(), within)
    return received
