"""Conformance scenarios on starting again: a consumer after `close()`, and a listener after a
clean stop, work the same on every backend (see docs/concepts.md, "Lifecycle rules"); and a
started consumer's `check_connection` answers in time. Part of `ConformanceSuite`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dispytch.backends.base import OutgoingMessage, Subscription

if TYPE_CHECKING:
    from dispytch.testing.harness import Session


class LifecycleScenarios:
    async def test_a_closed_consumer_starts_again(self, session: Session) -> None:
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        producer = await session.producer()
        for value in (b"first run", b"second run"):
            await producer.send(OutgoingMessage(topic, value))
            assert [d.value for d in await session.receive_many(consumer, 1)] == [value]
            await consumer.close()
            await consumer.start([Subscription.parse(topic, session.harness.delimiter)])

    async def test_a_listener_runs_again_after_a_clean_stop(self, session: Session) -> None:
        from dispytch import Event, EventBase, EventEmitter, EventListener
        from dispytch.testing.harness import new_name

        harness = session.harness
        topic = await harness.new_topic()

        class Tick(EventBase):
            __topic__ = topic
            __event_type__ = "tick"
            n: int

        consumer = await harness.consumer(new_name("rerun"), [topic])
        listener = EventListener(consumer, topic_delimiter=harness.delimiter)
        handled: list[int] = []
        arrived = asyncio.Event()

        @listener.handler(topic=topic, event="tick")
        async def on_tick(event: Event[Tick]) -> None:
            handled.append(event.body.n)
            arrived.set()

        emitter = EventEmitter(await session.producer())
        for n in range(2):
            arrived.clear()
            async with listener:
                await emitter.emit(Tick(n=n))
                await asyncio.wait_for(arrived.wait(), harness.receive_timeout)
        assert handled == [0, 1]
        assert not listener.running

    async def test_a_started_consumer_says_its_connection_is_up(self, session: Session) -> None:
        """`check_connection` (readiness checks ask it) answers within its timeout: True, or
        None for a backend that cannot tell; never False while the broker is up."""
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        answer = await asyncio.wait_for(consumer.check_connection(3.0), 10)
        assert answer is not False
