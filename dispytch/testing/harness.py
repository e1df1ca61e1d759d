"""What the conformance suite is given (`BackendHarness`) and how a scenario uses it
(`Session`: opens consumers and producers and closes them at the scenario's end)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest

from dispytch.backends.base import (
    Capabilities,
    Consumer,
    Delivery,
    OutgoingMessage,
    Producer,
    Subscription,
)


@dataclass
class BackendHarness:
    """What the suite needs to know about a backend."""

    name: str
    capabilities: Capabilities
    #: a fresh, unique topic (created on the broker if it needs creating)
    new_topic: Callable[[], Awaitable[str]]
    #: a consumer in `group` for `topics`, not started yet
    consumer: Callable[[str, list[str]], Awaitable[Consumer]]
    #: a producer, not started yet
    producer: Callable[[], Awaitable[Producer]]
    #: the values and headers dead-lettered from `topic`: (topic, count, timeout) -> list
    read_dead_letters: Callable[[str, int, float], Awaitable[list[tuple[bytes, dict[str, str]]]]]
    #: the delimiter the backend's topics use
    delimiter: str = "."
    #: how long the first message may take (group joins on Kafka take seconds)
    receive_timeout: float = 30.0


class Session:
    """Opens consumers and producers for one scenario and closes them all at its end."""

    def __init__(self, harness: BackendHarness) -> None:
        self.harness = harness
        self._consumers: list[Consumer] = []
        self._producers: list[Producer] = []

    async def consumer(self, topics: Sequence[str], group: str | None = None) -> Consumer:
        consumer = await self.harness.consumer(group or new_name("group"), list(topics))
        self._consumers.append(consumer)
        delimiter = self.harness.delimiter
        await consumer.start([Subscription.parse(topic, delimiter) for topic in topics])
        return consumer

    async def producer(self) -> Producer:
        producer = await self.harness.producer()
        self._producers.append(producer)
        await producer.start()
        return producer

    async def receive(self, consumer: Consumer, timeout: float | None = None) -> Delivery:
        wait = self.harness.receive_timeout if timeout is None else timeout
        return await asyncio.wait_for(consumer.receive(), wait)

    async def receive_many(
        self, consumer: Consumer, count: int, *, ack: bool = True
    ) -> list[Delivery]:
        received = []
        for _ in range(count):
            delivery = await self.receive(consumer)
            if ack:
                await delivery.ack()
            received.append(delivery)
        return received

    async def nothing_more(self, consumer: Consumer, wait: float = 1.0) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            extra = await asyncio.wait_for(consumer.receive(), wait)
            pytest.fail(f"unexpected message {extra.value!r} on {extra.topic}")

    async def close(self) -> None:
        for consumer in self._consumers:
            with contextlib.suppress(Exception):
                await consumer.close()
        for producer in self._producers:
            with contextlib.suppress(Exception):
                await producer.close()


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def message(topic: str, value: bytes, key: bytes | None = None, **headers: str) -> OutgoingMessage:
    return OutgoingMessage(topic=topic, value=value, key=key, headers=dict(headers))
