"""Conformance scenarios that run an `EventListener` on the backend: what the core promises
must hold on every backend, settling and committing included. Part of `ConformanceSuite`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dispytch.backends.base import OutgoingMessage
from dispytch.reasons import DeadLetterReason
from dispytch.testing.open_core_scenarios import OpenCoreScenarios

if TYPE_CHECKING:
    from dispytch.testing.harness import Session


class ListenerScenarios(OpenCoreScenarios):
    async def test_a_handler_raising_cancelled_error_is_a_failure_and_the_key_goes_on(
        self, session: Session
    ) -> None:
        """A handler that awaits something someone else cancelled fails like any other: it is
        retried, then dead-lettered; later events with its key are handled, the listener stops
        without waiting for its grace period, and everything is settled (on Kafka: the
        partition's commit goes past the event), so the group's next consumer starts after it."""
        from dispytch import Event, EventBase, EventEmitter, EventListener
        from dispytch.testing.harness import new_name

        harness = session.harness
        topic = await harness.new_topic()

        class Job(EventBase):
            __topic__ = topic
            __event_type__ = "job"
            __key__ = "key"
            key: str
            n: int

        group = new_name("cancelled")
        consumer = await harness.consumer(group, [topic])
        listener = EventListener(
            consumer, topic_delimiter=harness.delimiter, max_concurrency=2, shutdown_grace=600
        )
        attempts: list[int] = []
        handled: list[int] = []
        all_handled = asyncio.Event()

        @listener.handler(topic=topic, event="job", retries=1, retry_interval=0.01)
        async def on_job(event: Event[Job]) -> None:
            if event.body.n == 0:
                attempts.append(event.attempt)
                cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                cancelled.cancel()
                await cancelled
            handled.append(event.body.n)
            if len(handled) == 9:
                all_handled.set()

        producer = await session.producer()
        async with listener:
            await EventEmitter(producer).emit_many([Job(key="same", n=n) for n in range(10)])
            letters = await harness.read_dead_letters(topic, 1, harness.receive_timeout)
            await asyncio.wait_for(all_handled.wait(), harness.receive_timeout)
            await asyncio.wait_for(listener.stop(), harness.receive_timeout)
        expected = list(range(1, 10))
        assert (handled if harness.capabilities.ordered_per_key else sorted(handled)) == expected
        assert attempts == [1, 2]
        reason = DeadLetterReason.from_headers(letters[0][1])
        assert reason is not None
        assert (reason.stage, reason.error_type) == ("handler", "CancelledError")
        assert reason.attempts == 2
        if harness.capabilities.persistent:
            await producer.send(OutgoingMessage(topic=topic, value=b"marker", headers={}))
            again = await session.consumer([topic], group)
            first = await session.receive(again)
            assert first.value == b"marker", "an event before it was not settled"
            await first.ack()
