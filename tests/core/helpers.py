"""Shared helpers for the core tests: bounded waits, raw publishing, dead-letter reading, and
consumer stand-ins that count what the listener does with its deliveries."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from dispytch import InMemoryBroker
from dispytch.backends.base import Capabilities, Consumer, Delivery, OutgoingMessage, Subscription
from dispytch.errors import ConsumerStoppedError
from dispytch.reasons import DeadLetterReason

WAIT = 3.0


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    """Poll `predicate` until it holds; fail the test when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


def envelope(
    event_type: str,
    body: Any,
    *,
    event_id: str | None = None,
    timestamp: int | None = 1_700_000_000_000,
) -> bytes:
    event_id = event_id or str(uuid.uuid4())
    payload = {"id": event_id, "type": event_type, "body": body, "timestamp": timestamp}
    return json.dumps(payload).encode()


async def publish_raw(
    broker: InMemoryBroker,
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    producer = broker.producer()
    await producer.start()
    await producer.send(
        OutgoingMessage(topic=topic, value=value, key=key, headers=dict(headers or {}))
    )


async def read_dead_letters(
    broker: InMemoryBroker, topic: str, count: int, timeout: float = WAIT
) -> list[tuple[bytes, dict[str, str], DeadLetterReason]]:
    """Consume `count` dead letters of `topic` from `<topic>.dlq` (fails if fewer arrive)."""
    reader = broker.consumer(f"dlq-reader-{uuid.uuid4().hex}", [broker.dead_letter_topic(topic)])
    await reader.start([])
    letters = []
    try:
        for _ in range(count):
            delivery = await asyncio.wait_for(reader.receive(), timeout)
            headers = dict(delivery.headers)
            reason = DeadLetterReason.from_headers(headers)
            assert reason is not None, f"dead letter without reason headers: {headers}"
            letters.append((delivery.value, headers, reason))
            await delivery.ack()
    finally:
        await reader.close()
    return letters


class CountingConsumer(Consumer):
    """Wraps a real consumer; counts receives and settlements of what it hands out."""

    def __init__(self, inner: Consumer) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.received = 0
        self.settled = 0
        self.max_unsettled = 0
        self.acks = 0
        self.nacks = 0
        self.dead_letters = 0

    @property
    def unsettled(self) -> int:
        return self.received - self.settled

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        await self.inner.start(subscriptions)

    async def receive(self) -> Delivery:
        delivery = await self.inner.receive()
        self.received += 1
        self.max_unsettled = max(self.max_unsettled, self.unsettled)
        return _CountingDelivery(self, delivery)

    async def stop(self) -> None:
        await self.inner.stop()

    async def close(self) -> None:
        await self.inner.close()


class _CountingDelivery(Delivery):
    __slots__ = ("_inner", "_owner")

    def __init__(self, owner: CountingConsumer, inner: Delivery) -> None:
        self._owner = owner
        self._inner = inner
        self.topic = inner.topic
        self.value = inner.value
        self.key = inner.key
        self.headers = inner.headers
        self.ordering_key = inner.ordering_key
        self.metadata = inner.metadata

    async def ack(self) -> None:
        self._owner.acks += 1
        self._owner.settled += 1
        await self._inner.ack()

    async def nack(self, *, delay: float | None = None) -> None:
        self._owner.nacks += 1
        self._owner.settled += 1
        await self._inner.nack(delay=delay)

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        self._owner.dead_letters += 1
        self._owner.settled += 1
        await self._inner.dead_letter(headers)


class ScriptedDelivery(Delivery):
    """A delivery from `ScriptedConsumer`: records how the listener settled it."""

    __slots__ = ("outcomes", "reason")

    def __init__(
        self, topic: str, value: bytes, ordering_key: Hashable | None = None
    ) -> None:
        self.topic = topic
        self.value = value
        self.key = None if ordering_key is None else str(ordering_key).encode()
        self.headers = {}
        self.ordering_key = ordering_key
        self.metadata = {}
        self.outcomes: list[str] = []
        self.reason: DeadLetterReason | None = None

    async def ack(self) -> None:
        self.outcomes.append("ack")

    async def nack(self, *, delay: float | None = None) -> None:
        self.outcomes.append("nack")

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        self.reason = DeadLetterReason.from_headers(headers)
        self.outcomes.append("dead_letter")


class ScriptedConsumer(Consumer):
    """Hands out the deliveries put into it, as fast as asked: no broker-side ordering, so
    tests see what the listener itself does with ordering keys."""

    capabilities = Capabilities(
        persistent=False, ordered_per_key=False, consumer_groups=False, redelivers_on_nack=False
    )

    def __init__(self, deliveries: Sequence[ScriptedDelivery] = ()) -> None:
        self.queue: asyncio.Queue[ScriptedDelivery | None] = asyncio.Queue()
        for delivery in deliveries:
            self.queue.put_nowait(delivery)
        self.subscriptions: list[Subscription] = []
        self.closed = False

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        self.subscriptions = list(subscriptions)

    async def receive(self) -> Delivery:
        delivery = await self.queue.get()
        if delivery is None:
            self.queue.put_nowait(None)
            raise ConsumerStoppedError("stopped")
        return delivery

    async def stop(self) -> None:
        self.queue.put_nowait(None)

    async def close(self) -> None:
        self.closed = True


async def run_group(
    group: Any,
    messages: Sequence[tuple[str, bytes]],
    *,
    topic_delimiter: str = ":",
    **listener_options: Any,
) -> InMemoryBroker:
    """Publish raw `(topic, value)` messages to a listener running `group` and return the
    broker once every message was settled (acked or dead-lettered)."""
    from dispytch import EventListener

    broker = InMemoryBroker()
    listener = EventListener(
        broker.consumer("g"), topic_delimiter=topic_delimiter, **listener_options
    )
    listener.add_handler_group(group)
    async with listener:
        for topic, value in messages:
            await publish_raw(broker, topic, value)
        await wait_until(lambda: broker.pending("g") == 0, what="every message settled")
    return broker
