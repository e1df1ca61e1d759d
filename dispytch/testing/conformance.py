"""The conformance suite: the same scenarios against every backend, ours or yours.

Subclass `ConformanceSuite` in a test module and provide an async `harness` fixture::

    class TestMyBackend(ConformanceSuite):
        @pytest.fixture
        async def harness(self):
            yield BackendHarness(name="mine", capabilities=..., new_topic=..., consumer=...,
                                 producer=..., read_dead_letters=...)

Every scenario uses fresh topics and groups, so tests never depend on each other. A scenario
that needs a capability the backend does not have is skipped with that reason.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from dispytch.backends.base import Consumer
from dispytch.errors import ConsumerStoppedError
from dispytch.reasons import DLQ_HEADER_PREFIX, DeadLetterReason, dead_letter_headers
from dispytch.testing.harness import BackendHarness, Session, message, new_name
from dispytch.testing.lifecycle_scenarios import LifecycleScenarios
from dispytch.testing.listener_scenarios import ListenerScenarios

__all__ = ["BackendHarness", "ConformanceSuite", "Session", "message", "new_name"]


class ConformanceSuite(ListenerScenarios, LifecycleScenarios):
    """The scenarios. Subclasses provide the `harness` fixture."""

    @pytest.fixture
    async def session(self, harness: BackendHarness) -> AsyncIterator[Session]:
        session = Session(harness)
        try:
            yield session
        finally:
            await session.close()

    async def test_body_headers_and_key_round_trip(self, session: Session) -> None:
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        producer = await session.producer()
        await producer.send(message(topic, b'{"x": 1}', b"key-1", trace="abc", kind="t"))
        delivery = await session.receive(consumer)
        assert delivery.topic == topic
        assert delivery.value == b'{"x": 1}'
        assert delivery.key == b"key-1"
        assert delivery.headers["trace"] == "abc"
        assert delivery.headers["kind"] == "t"
        await delivery.ack()

    async def test_every_event_of_many_is_delivered(self, session: Session) -> None:
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        producer = await session.producer()
        sent = [f"event-{n}".encode() for n in range(150)]
        await producer.send_many([message(topic, value) for value in sent])
        received = await session.receive_many(consumer, len(sent))
        assert sorted(d.value for d in received) == sorted(sent)
        await session.nothing_more(consumer)

    async def test_topics_are_isolated(self, session: Session) -> None:
        first, second = await session.harness.new_topic(), await session.harness.new_topic()
        consumer = await session.consumer([first])
        producer = await session.producer()
        await producer.send(message(second, b"not for you"))
        await producer.send(message(first, b"for you"))
        delivery = await session.receive(consumer)
        assert (delivery.topic, delivery.value) == (first, b"for you")
        await delivery.ack()
        await session.nothing_more(consumer)

    async def test_every_group_gets_every_event(self, session: Session) -> None:
        if not session.harness.capabilities.consumer_groups:
            pytest.skip(f"{session.harness.name} has no consumer groups")
        topic = await session.harness.new_topic()
        first = await session.consumer([topic])
        second = await session.consumer([topic])
        producer = await session.producer()
        sent = [f"e{n}".encode() for n in range(20)]
        await producer.send_many([message(topic, value) for value in sent])
        for consumer in (first, second):
            received = await session.receive_many(consumer, len(sent))
            assert sorted(d.value for d in received) == sorted(sent)

    async def test_members_of_a_group_share_the_events(self, session: Session) -> None:
        if not session.harness.capabilities.consumer_groups:
            pytest.skip(f"{session.harness.name} has no consumer groups")
        topic = await session.harness.new_topic()
        group = new_name("shared")
        members = [await session.consumer([topic], group) for _ in range(2)]
        producer = await session.producer()
        sent = {f"e{n}".encode() for n in range(60)}
        await producer.send_many(
            [message(topic, value, f"k{n}".encode()) for n, value in enumerate(sorted(sent))]
        )
        received: list[bytes] = []

        async def drain(member: Consumer) -> None:
            while True:
                delivery = await member.receive()
                received.append(delivery.value)
                await delivery.ack()

        tasks = [asyncio.create_task(drain(member)) for member in members]
        try:
            deadline = asyncio.get_running_loop().time() + session.harness.receive_timeout * 2
            while set(received) != sent:
                assert asyncio.get_running_loop().time() < deadline, (
                    f"only {len(set(received))} of {len(sent)} events arrived"
                )
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert set(received) == sent

    async def test_nack_redelivers(self, session: Session) -> None:
        if not session.harness.capabilities.redelivers_on_nack:
            pytest.skip(f"{session.harness.name} does not redeliver on nack")
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        producer = await session.producer()
        await producer.send(message(topic, b"again"))
        first = await session.receive(consumer)
        await first.nack()
        second = await session.receive(consumer)
        assert second.value == b"again"
        await second.ack()
        await session.nothing_more(consumer)

    async def test_delayed_nack_redelivers_later(self, session: Session) -> None:
        if not session.harness.capabilities.native_delay:
            pytest.skip(f"{session.harness.name} has no native delay")
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        producer = await session.producer()
        await producer.send(message(topic, b"later"))
        first = await session.receive(consumer)
        loop = asyncio.get_running_loop()
        nacked_at = loop.time()
        await first.nack(delay=0.5)
        second = await session.receive(consumer)
        assert second.value == b"later"
        assert loop.time() - nacked_at >= 0.4
        await second.ack()

    async def test_retry_later_delivers_a_copy_to_this_group_only(self, session: Session) -> None:
        if not session.harness.capabilities.native_delay:
            pytest.skip(f"{session.harness.name} has no native delay (no retry_later)")
        topic = await session.harness.new_topic()
        retrying = await session.consumer([topic])
        other = await session.consumer([topic])
        producer = await session.producer()
        await producer.send(message(topic, b"again", b"k", origin="test", stale="yes"))
        first = await session.receive(retrying)
        loop = asyncio.get_running_loop()
        handed_back_at = loop.time()
        await first.retry_later(0.5, {"origin": "test", "dispytch-attempt": "1"})
        copy = await session.receive(retrying)
        assert loop.time() - handed_back_at >= 0.4
        assert (copy.topic, copy.value, copy.key) == (topic, b"again", b"k")
        assert copy.headers.get("dispytch-attempt") == "1"
        assert copy.headers.get("origin") == "test"
        assert "stale" not in copy.headers
        await copy.ack()
        original = await session.receive(other)  # the other group got the original only
        assert original.value == b"again"
        await original.ack()
        await session.nothing_more(other)
        await session.nothing_more(retrying)

    async def test_unsettled_events_come_back_after_restart(self, session: Session) -> None:
        if not session.harness.capabilities.persistent:
            pytest.skip(f"{session.harness.name} does not persist messages")
        topic = await session.harness.new_topic()
        group = new_name("restart")
        consumer = await session.consumer([topic], group)
        producer = await session.producer()
        sent = [f"e{n}".encode() for n in range(10)]
        await producer.send_many([message(topic, value) for value in sent])
        received = await session.receive_many(consumer, len(sent), ack=False)
        for delivery in received[:5]:
            await delivery.ack()
        await consumer.stop()
        await consumer.close()
        again = await session.consumer([topic], group)
        redelivered = await session.receive_many(again, 5)
        assert sorted(d.value for d in redelivered) == sorted(d.value for d in received[5:])
        await session.nothing_more(again)

    async def test_dead_letter_stores_the_message_with_the_headers_given(
        self, session: Session
    ) -> None:
        """`dead_letter(headers)` stores the value and key with exactly the headers the core
        chose (here: the original ones less a stale reason header, plus a new reason)."""
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        producer = await session.producer()
        stale = {DLQ_HEADER_PREFIX + "handler": "an earlier handler"}
        await producer.send(message(topic, b"poison", b"k", origin="test", **stale))
        delivery = await session.receive(consumer)
        reason = DeadLetterReason(
            stage="handler",
            error_type="ValueError",
            error_message="boom",
            original_topic=topic,
            attempts=3,
            event_id="e-1",
            event_type="thing_happened",
        )
        await delivery.dead_letter(dead_letter_headers(delivery.headers, reason))
        letters = await session.harness.read_dead_letters(topic, 1, session.harness.receive_timeout)
        assert len(letters) == 1
        value, headers = letters[0]
        assert value == b"poison"
        assert headers["origin"] == "test"
        assert DeadLetterReason.from_headers(headers) == reason
        assert DLQ_HEADER_PREFIX + "handler" not in headers
        await session.nothing_more(consumer)

    async def test_delivery_count_when_reported_counts_redeliveries(
        self, session: Session
    ) -> None:
        """A backend that reports the broker's delivery count reports 1 (or nothing) the first
        time and more once `nack()` had the message delivered again."""
        if not session.harness.capabilities.redelivers_on_nack:
            pytest.skip(f"{session.harness.name} does not redeliver on nack")
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        producer = await session.producer()
        await producer.send(message(topic, b"counted"))
        first = await session.receive(consumer)
        assert first.delivery_count in (None, 1)
        await first.nack()
        again = await session.receive(consumer)
        assert again.value == b"counted"
        if again.delivery_count is None:
            assert first.delivery_count is None, "counted the first delivery, not the second"
        else:
            assert again.delivery_count >= 2
        await again.ack()

    async def test_order_is_kept_per_key(self, session: Session) -> None:
        if not session.harness.capabilities.ordered_per_key:
            pytest.skip(f"{session.harness.name} does not order per key")
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        producer = await session.producer()
        keys = [b"a", b"b", b"c"]
        sent = [message(topic, f"{n}".encode(), keys[n % 3]) for n in range(60)]
        await producer.send_many(sent)
        by_key: dict[bytes | None, list[int]] = defaultdict(list)
        for delivery in await session.receive_many(consumer, len(sent)):
            by_key[delivery.key].append(int(delivery.value))
        for key in keys:
            assert by_key[key] == sorted(by_key[key]), f"key {key!r} out of order"
            assert len(by_key[key]) == 20

    async def test_close_is_clean(self, session: Session) -> None:
        topic = await session.harness.new_topic()
        consumer = await session.consumer([topic])
        waiting = asyncio.create_task(consumer.receive())
        await asyncio.sleep(0.2)
        await consumer.stop()
        with pytest.raises(ConsumerStoppedError):
            await asyncio.wait_for(waiting, 10)
        with pytest.raises(ConsumerStoppedError):
            await consumer.receive()
        await consumer.close()
        await consumer.close()  # closing twice is harmless

    async def test_listener_handles_events_and_dead_letters_failures(
        self, session: Session
    ) -> None:
        """The core on this backend: handled events are acked, a failing one is retried and
        dead-lettered with its reason, bytes that are not an event are dead-lettered."""
        from dispytch import Event, EventBase, EventEmitter, EventListener

        harness = session.harness
        topic = await harness.new_topic()

        class Ping(EventBase):
            __topic__ = topic
            __event_type__ = "ping"
            n: int

        handled: list[int] = []
        all_handled = asyncio.Event()
        attempts: list[int] = []
        consumer = await harness.consumer(new_name("listener"), [topic])
        listener = EventListener(consumer, topic_delimiter=harness.delimiter)

        @listener.handler(topic=topic, event="ping", retries=2, retry_interval=0.01)
        async def on_ping(event: Event[Ping]) -> None:
            if event.body.n == 13:
                attempts.append(event.attempt)
                raise ValueError("unlucky")
            handled.append(event.body.n)
            if len(set(handled)) == 29:
                all_handled.set()

        producer = await session.producer()
        emitter = EventEmitter(producer)
        async with listener:
            await emitter.emit_many([Ping(n=n) for n in range(30)])
            await producer.send(message(topic, b"\x00 not json"))
            letters = await harness.read_dead_letters(topic, 2, harness.receive_timeout)
            await asyncio.wait_for(all_handled.wait(), harness.receive_timeout)
        assert sorted(set(handled)) == [n for n in range(30) if n != 13]
        assert attempts == [1, 2, 3]
        reasons = {}
        for value, headers in letters:
            reason = DeadLetterReason.from_headers(headers)
            assert reason is not None
            reasons[reason.stage] = (value, reason)
        assert set(reasons) == {"handler", "decode"}
        handler_reason = reasons["handler"][1]
        assert handler_reason.error_type == "ValueError"
        assert handler_reason.error_message == "unlucky"
        assert handler_reason.attempts == 3
        assert handler_reason.original_topic == topic
        assert "on_ping" in (handler_reason.handler or "")
        assert handler_reason.event_type == "ping"
        assert reasons["decode"][0] == b"\x00 not json"


__all__ = ["BackendHarness", "ConformanceSuite", "Session", "message", "new_name"]
