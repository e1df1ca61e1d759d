"""The listener's lifecycle at its edges: stopping or giving up while the consumer starts,
starting again after a failed or a clean run, and calls in the wrong order (see
docs/concepts.md, "The listener's lifecycle")."""

from __future__ import annotations

import asyncio
import os
import signal
import warnings
from collections.abc import Sequence

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.backends.base import Consumer, Delivery, ListenerNeeds, Subscription
from dispytch.errors import BrokerUnavailableError
from dispytch.memory.consumer import InMemoryConsumer
from tests.core.helpers import wait_until

#: bound for calls that must return promptly (far above what they take)
PROMPT = 5.0


class Body(BaseModel):
    n: int


class Ping(EventBase):
    __topic__ = "t"
    __event_type__ = "e"
    n: int


class GatedConsumer(Consumer):
    """An in-memory consumer whose start waits for `gate` (a broker slow to answer), or fails
    with `BrokerUnavailableError` while `down` is set."""

    def __init__(self, inner: InMemoryConsumer, *, ignore_cancel: bool = False) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.gate = asyncio.Event()
        self.down = False
        self.ignore_cancel = ignore_cancel
        self.starting = asyncio.Event()
        self.starts = 0
        self.cancelled_starts = 0
        self.completed_starts = 0

    def prepare(self, needs: ListenerNeeds) -> None:
        self.inner.prepare(needs)

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        self.starts += 1
        self.starting.set()
        if self.down:
            raise BrokerUnavailableError("the broker is down")
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled_starts += 1
            if not self.ignore_cancel:
                raise
            await self.gate.wait()
        await self.inner.start(subscriptions)
        self.completed_starts += 1

    async def receive(self) -> Delivery:
        return await self.inner.receive()

    async def receive_many(self, max_messages: int) -> list[Delivery]:
        return await self.inner.receive_many(max_messages)

    async def stop(self) -> None:
        await self.inner.stop()

    async def close(self) -> None:
        await self.inner.close()


def make_listener(consumer: Consumer, handled: list[int], **options: float) -> EventListener:
    listener = EventListener(consumer, **options)  # type: ignore[arg-type]

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        handled.append(event.body.n)

    return listener


async def emit(broker: InMemoryBroker, n: int) -> None:
    await EventEmitter(broker.producer()).emit(Ping(n=n))


async def handled_by_a_fresh_listener(broker: InMemoryBroker, group: str) -> list[int]:
    """Run another listener of `group` until it handled what is pending: where the events went."""
    handled: list[int] = []
    async with make_listener(broker.consumer(group), handled):
        await wait_until(lambda: broker.pending(group) == 0, PROMPT, "the group drained")
    return handled


# -- stop() while the consumer is starting ----------------------------------------------------


async def test_stop_while_the_consumer_is_starting_returns_and_nothing_is_consumed() -> None:
    broker = InMemoryBroker()
    consumer = GatedConsumer(broker.consumer("g"))
    handled: list[int] = []
    listener = make_listener(consumer, handled)
    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await asyncio.wait_for(consumer.starting.wait(), PROMPT)

    await asyncio.wait_for(listener.stop(), PROMPT)

    await asyncio.wait_for(listening, PROMPT)  # listen() ended, without an error
    assert not listener.running
    assert consumer.cancelled_starts == 1
    consumer.gate.set()  # the broker answers now: too late, nobody may consume
    await emit(broker, 1)
    assert await handled_by_a_fresh_listener(broker, "g") == [1]
    assert handled == []


async def test_stop_is_bounded_even_when_the_start_ignores_its_cancellation() -> None:
    broker = InMemoryBroker()
    consumer = GatedConsumer(broker.consumer("g"), ignore_cancel=True)
    handled: list[int] = []
    listener = make_listener(consumer, handled, close_timeout=0.2)
    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await asyncio.wait_for(consumer.starting.wait(), PROMPT)

    await asyncio.wait_for(listener.stop(), PROMPT)
    await asyncio.wait_for(listening, PROMPT)
    assert not listener.running

    consumer.gate.set()  # the start completes after all: the listener must not fetch
    await wait_until(lambda: consumer.completed_starts == 1, PROMPT, "the late start")
    await emit(broker, 1)
    assert await handled_by_a_fresh_listener(broker, "g") == [1]
    assert handled == []


async def test_cancelling_listen_after_a_stop_during_start_ends_it() -> None:
    broker = InMemoryBroker()
    consumer = GatedConsumer(broker.consumer("g"), ignore_cancel=True)
    listener = make_listener(consumer, [], close_timeout=0.2)
    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await asyncio.wait_for(consumer.starting.wait(), PROMPT)
    stopping = asyncio.create_task(listener.stop())
    await asyncio.sleep(0)
    consumer.gate.set()  # the start completes although the stop was requested
    await wait_until(lambda: consumer.completed_starts == 1, PROMPT, "the start")

    listening.cancel()  # may have ended already: then this does nothing
    await asyncio.wait({listening}, timeout=PROMPT)
    assert listening.done()
    await asyncio.wait_for(stopping, PROMPT)
    assert not listener.running


async def test_sigterm_while_the_consumer_is_starting_stops_the_listener() -> None:
    broker = InMemoryBroker()
    consumer = GatedConsumer(broker.consumer("g"))
    listener = make_listener(consumer, [])
    listening = asyncio.create_task(listener.listen(handle_signals=True))
    try:
        await asyncio.wait_for(consumer.starting.wait(), PROMPT)
        # never send SIGTERM unless the listener installed its handler: it would kill pytest
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(listening, PROMPT)
    finally:
        if not listening.done():
            await asyncio.wait_for(listener.stop(), PROMPT)
    assert consumer.cancelled_starts == 1
    assert not listener.running
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# -- `async with` given up during start-up ----------------------------------------------------


async def enter_and_wait(listener: EventListener) -> None:
    async with listener:
        await asyncio.Event().wait()  # pragma: no cover - the entry never completes


async def test_async_with_given_up_while_starting_leaves_nothing_running() -> None:
    broker = InMemoryBroker()
    consumer = GatedConsumer(broker.consumer("g"))
    handled: list[int] = []
    listener = make_listener(consumer, handled)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(enter_and_wait(listener), 0.2)

    assert not listener.running
    assert consumer.cancelled_starts == 1
    consumer.gate.set()
    await emit(broker, 1)
    assert await handled_by_a_fresh_listener(broker, "g") == [1]
    assert handled == []


async def test_async_with_given_up_after_the_start_also_stops_the_listener() -> None:
    """The timeout may fire just as the consumer has started: the entry failed all the same."""
    broker = InMemoryBroker()
    consumer = GatedConsumer(broker.consumer("g"), ignore_cancel=True)
    handled: list[int] = []
    listener = make_listener(consumer, handled, close_timeout=PROMPT)
    entering = asyncio.create_task(enter_and_wait(listener))
    await asyncio.wait_for(consumer.starting.wait(), PROMPT)
    entering.cancel()
    await asyncio.sleep(0)
    consumer.gate.set()  # the start completes while the entry is being given up

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(entering, PROMPT)
    assert not listener.running
    await emit(broker, 1)
    assert await handled_by_a_fresh_listener(broker, "g") == [1]
    assert handled == []


# -- starting again -----------------------------------------------------------------------------


async def test_listen_again_after_the_broker_was_down_at_start() -> None:
    broker = InMemoryBroker()
    consumer = GatedConsumer(broker.consumer("g"))
    consumer.down = True
    consumer.gate.set()
    handled: list[int] = []
    listener = make_listener(consumer, handled)
    with pytest.raises(BrokerUnavailableError):
        await listener.listen(handle_signals=False)
    assert not listener.running

    consumer.down = False
    await emit(broker, 1)
    async with listener:
        await wait_until(lambda: handled == [1], PROMPT, "the event after the retry")


async def test_listen_again_after_a_stop_during_start() -> None:
    broker = InMemoryBroker()
    consumer = GatedConsumer(broker.consumer("g"))
    handled: list[int] = []
    listener = make_listener(consumer, handled)
    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await asyncio.wait_for(consumer.starting.wait(), PROMPT)
    await asyncio.wait_for(listener.stop(), PROMPT)
    await asyncio.wait_for(listening, PROMPT)

    consumer.gate.set()
    await emit(broker, 1)
    async with listener:
        await wait_until(lambda: handled == [1], PROMPT, "the event of the second run")


async def test_a_listener_runs_again_after_a_clean_stop() -> None:
    broker = InMemoryBroker()
    handled: list[int] = []
    listener = make_listener(broker.consumer("g"), handled)
    for n in range(3):
        async with listener:
            await emit(broker, n)
            await wait_until(lambda n=n: handled[-1:] == [n], PROMPT, f"event {n}")
    assert handled == [0, 1, 2]
    assert broker.pending("g") == 0


def test_a_listener_runs_again_in_another_event_loop() -> None:
    broker = InMemoryBroker()
    handled: list[int] = []
    listener = make_listener(broker.consumer("g"), handled)

    async def one_run(n: int) -> None:
        async with listener:
            await emit(broker, n)
            await wait_until(lambda: handled[-1:] == [n], PROMPT, f"event {n}")
        await listener.stop()  # after the run: returns at once

    asyncio.run(asyncio.wait_for(one_run(1), PROMPT))
    asyncio.run(asyncio.wait_for(one_run(2), PROMPT))
    assert handled == [1, 2]


# -- calls in the wrong order ---------------------------------------------------------------


async def test_run_inside_a_running_loop_is_refused_at_once() -> None:
    listener = make_listener(InMemoryBroker().consumer("g"), [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited"
        with pytest.raises(RuntimeError, match=r"await listener\.listen\(\)"):
            listener.run()
    assert not listener.running


async def test_stop_before_listen_does_nothing_and_listen_works_after_it() -> None:
    broker = InMemoryBroker()
    handled: list[int] = []
    listener = make_listener(broker.consumer("g"), handled)
    await asyncio.wait_for(listener.stop(), PROMPT)
    await asyncio.wait_for(listener.stop(), PROMPT)

    async with listener:
        await emit(broker, 1)
        await wait_until(lambda: handled == [1], PROMPT, "the event")


async def test_stop_twice_at_once_both_return_after_the_shutdown() -> None:
    broker = InMemoryBroker()
    listener = make_listener(broker.consumer("g"), [])
    async with listener:
        first = asyncio.create_task(listener.stop())
        second = asyncio.create_task(listener.stop())
        await asyncio.wait_for(asyncio.gather(first, second), PROMPT)
        assert not listener.running
    await asyncio.wait_for(listener.stop(), PROMPT)  # a third, after the shutdown


async def test_listen_twice_at_once_is_refused_and_the_first_goes_on() -> None:
    broker = InMemoryBroker()
    handled: list[int] = []
    listener = make_listener(broker.consumer("g"), handled)
    async with listener:
        with pytest.raises(RuntimeError, match="already listening"):
            await listener.listen(handle_signals=False)
        with pytest.raises(RuntimeError, match="already listening"):
            async with listener:
                pass  # pragma: no cover
        assert listener.running
        await emit(broker, 1)
        await wait_until(lambda: handled == [1], PROMPT, "the event")


async def test_the_consumer_is_told_what_the_listener_needs_before_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = InMemoryBroker()
    consumer = broker.consumer("g")
    told: list[ListenerNeeds] = []
    monkeypatch.setattr(consumer, "prepare", told.append)
    listener = EventListener(consumer, max_concurrency=7, shutdown_grace=12.5)

    @listener.handler(topic="t", event="e", retries=1, delayed_retries=True)
    async def handle(event: Event[Body]) -> None:
        pass

    async with listener:
        pass
    assert told == [ListenerNeeds(max_in_flight=7, delayed_retries=True, shutdown_grace=12.5)]
