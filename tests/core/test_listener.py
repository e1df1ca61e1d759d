"""The listener's lifecycle, concurrency, ordering, resilience to bad messages and signals."""

import asyncio
import logging
import os
import signal
import time
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from tests.core.helpers import (
    CountingConsumer,
    ScriptedConsumer,
    ScriptedDelivery,
    envelope,
    publish_raw,
    read_dead_letters,
    wait_until,
)


class Body(BaseModel):
    n: int


class Ping(EventBase):
    __topic__ = "t"
    __event_type__ = "e"
    n: int


async def test_async_with_runs_the_listener_and_stops_it() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    seen: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        seen.append(event.body.n)

    async with listener:
        assert listener.running
        await EventEmitter(broker.producer()).emit(Ping(n=1))
        await wait_until(lambda: seen == [1])
    assert not listener.running
    assert broker.pending("g") == 0


async def test_listen_without_handlers_is_refused() -> None:
    listener = EventListener(InMemoryBroker().consumer("g"))
    with pytest.raises(RuntimeError, match="no handlers"):
        await listener.listen(handle_signals=False)


async def test_adding_handlers_while_running_is_refused() -> None:
    listener = EventListener(InMemoryBroker().consumer("g"))

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None: ...

    async with listener:
        with pytest.raises(RuntimeError):

            @listener.handler(topic="t", event="other")
            async def late(event: Event[Body]) -> None: ...


async def test_stop_drains_in_flight_handlers() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=5.0)
    started = asyncio.Event()
    finished: list[int] = []

    @listener.handler(topic="t", event="e")
    async def slow(event: Event[Body]) -> None:
        started.set()
        await asyncio.sleep(0.1)
        finished.append(event.body.n)

    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await EventEmitter(broker.producer()).emit(Ping(n=1))
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(listener.stop(), 2)
    assert finished == [1]  # finished before stop() returned
    assert broker.pending("g") == 0  # and was acked
    await asyncio.wait_for(listening, 1)


async def test_grace_period_exceeded_cancels_and_leaves_the_message_for_redelivery() -> None:
    broker = InMemoryBroker()
    stuck = EventListener(broker.consumer("g"), shutdown_grace=0.1)
    started = asyncio.Event()
    cancelled: list[bool] = []

    @stuck.handler(topic="t", event="e")
    async def forever(event: Event[Body]) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    ping = Ping(n=7)
    async with stuck:
        await EventEmitter(broker.producer()).emit(ping)
        await asyncio.wait_for(started.wait(), 2)
        begun = time.monotonic()
    assert time.monotonic() - begun < 2.0
    assert cancelled == [True]
    assert broker.pending("g") == 1  # not acked
    assert broker.backlog("t.dlq") == 0  # and not dead-lettered

    second = EventListener(broker.consumer("g"))
    redelivered: list[tuple[str, Any]] = []

    @second.handler(topic="t", event="e")
    async def quick(event: Event[Body]) -> None:
        redelivered.append((event.id, event.metadata.get("redelivered")))

    async with second:
        await wait_until(lambda: len(redelivered) == 1)
        await wait_until(lambda: broker.pending("g") == 0)
    assert redelivered == [(ping.id, True)]


async def test_stop_from_inside_a_handler_does_not_deadlock() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=5.0)
    after_stop: list[bool] = []

    @listener.handler(topic="t", event="e")
    async def stopper(event: Event[Body]) -> None:
        await listener.stop()
        after_stop.append(listener.running)

    await EventEmitter(broker.producer()).emit(Ping(n=1))
    await asyncio.wait_for(listener.listen(handle_signals=False), 2)
    assert after_stop == [True]  # stop() returned at once; the handler went on
    assert broker.pending("g") == 0


async def test_stop_from_inside_one_of_several_handlers_does_not_deadlock() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=1.0)
    done: list[str] = []

    @listener.handler(topic="t", event="e")
    async def stopper(event: Event[Body]) -> None:
        await listener.stop()
        done.append("stopper")

    @listener.handler(topic="t", event="e")
    async def other(event: Event[Body]) -> None:
        done.append("other")

    await EventEmitter(broker.producer()).emit(Ping(n=1))
    begun = time.monotonic()
    await asyncio.wait_for(listener.listen(handle_signals=False), 3)
    assert time.monotonic() - begun < 0.5
    assert sorted(done) == ["other", "stopper"]
    assert broker.pending("g") == 0


async def test_concurrency_is_bounded_and_so_is_fetching() -> None:
    broker = InMemoryBroker()
    consumer = CountingConsumer(broker.consumer("g"))
    listener = EventListener(consumer, max_concurrency=3)
    gate = asyncio.Event()
    running = 0
    most = 0
    done = 0

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        await gate.wait()
        await asyncio.sleep(0.001)
        running -= 1
        done += 1

    emitter = EventEmitter(broker.producer())
    async with listener:
        await emitter.emit_many([Ping(n=n) for n in range(12)])
        await wait_until(lambda: running == 3)
        for _ in range(20):  # let the listener try to take more
            await asyncio.sleep(0)
        assert running == 3
        assert consumer.unsettled == 3
        assert broker.pending("g") == 12
        gate.set()
        await wait_until(lambda: done == 12)
        await wait_until(lambda: broker.pending("g") == 0)
    assert most == 3
    assert consumer.max_unsettled == 3
    assert consumer.acks == 12


class UserEvent(EventBase):
    __topic__ = "users"
    __event_type__ = "changed"
    __key__: ClassVar[str | None] = "user_id"
    user_id: str
    seq: int


async def test_same_key_in_order_different_keys_concurrently() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    log: list[tuple[str, int]] = []
    b_started = asyncio.Event()
    running: dict[str, int] = {"a": 0, "b": 0}
    overlap: list[str] = []

    @listener.handler(topic="users", event="changed")
    async def handler(event: Event[dict[str, Any]]) -> None:
        user, seq = event.body["user_id"], event.body["seq"]
        assert event.key == user.encode()
        running[user] += 1
        if running[user] > 1:
            overlap.append(user)
        if user == "a" and seq == 0:
            # a1 must wait for a0, b must not: a0 waits until b has started
            await asyncio.wait_for(b_started.wait(), 2)
        if user == "b":
            b_started.set()
        await asyncio.sleep(0.002 * (5 - seq))  # earlier events take longer
        log.append((user, seq))
        running[user] -= 1

    emitter = EventEmitter(broker.producer())
    async with listener:
        for seq in range(5):
            await emitter.emit(UserEvent(user_id="a", seq=seq))
            await emitter.emit(UserEvent(user_id="b", seq=seq))
        await wait_until(lambda: len(log) == 10)
    assert [seq for user, seq in log if user == "a"] == [0, 1, 2, 3, 4]
    assert [seq for user, seq in log if user == "b"] == [0, 1, 2, 3, 4]
    assert overlap == []
    assert log.index(("b", 0)) < log.index(("a", 0))  # b ran while a0 waited


async def test_listener_keeps_key_order_even_when_the_consumer_does_not() -> None:
    """With a consumer that hands out everything at once, the listener orders by key."""
    deliveries = [
        ScriptedDelivery("t", envelope("e", {"n": n}), ordering_key=("k" if n % 2 else None))
        for n in range(8)
    ]
    consumer = ScriptedConsumer(deliveries)
    listener = EventListener(consumer)
    log: list[int] = []
    keyed_running = 0
    keyed_overlap = 0

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        nonlocal keyed_running, keyed_overlap
        keyed = event.body.n % 2 == 1
        if keyed:
            keyed_running += 1
            keyed_overlap = max(keyed_overlap, keyed_running)
        await asyncio.sleep(0.001 * (8 - event.body.n))
        log.append(event.body.n)
        if keyed:
            keyed_running -= 1

    async with listener:
        await wait_until(lambda: all(d.outcomes for d in deliveries))
    assert [n for n in log if n % 2] == [1, 3, 5, 7]
    assert keyed_overlap == 1
    assert sorted(log) == list(range(8))
    assert log[0] % 2 == 0  # unkeyed ones did not wait: a short unkeyed one finished first
    assert all(d.outcomes == ["ack"] for d in deliveries)


async def test_keyless_events_run_concurrently() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    release = asyncio.Event()
    done: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        if event.body.n == 0:
            await release.wait()
        done.append(event.body.n)

    emitter = EventEmitter(broker.producer())
    async with listener:
        for n in range(4):
            await emitter.emit(Ping(n=n))
        await wait_until(lambda: sorted(done) == [1, 2, 3], what="the fast events")
        assert broker.pending("g") == 1
        release.set()
        await wait_until(lambda: broker.pending("g") == 0)
    assert done[-1] == 0


@pytest.mark.parametrize(
    ("value", "stage"),
    [
        (b"garbage", "decode"),
        (b"", "decode"),
        (b"\xff\xfe\x00", "decode"),
        (b'{"a": 1}', "decode"),
        (b"[1, 2, 3]", "decode"),
        (b'{"id": 5, "type": "e", "body": {}}', "decode"),
        (b'{"id": "x", "type": "e", "body": {"n": "many"}, "timestamp": 1}', "validation"),
    ],
)
async def test_bad_message_is_dead_lettered_and_the_listener_goes_on(
    value: bytes, stage: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    seen: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        seen.append(event.body.n)

    async with listener:
        await publish_raw(broker, "t", value)
        await EventEmitter(broker.producer()).emit(Ping(n=1))
        await wait_until(lambda: broker.pending("g") == 0)
        assert listener.running
    assert seen == [1]
    [(dead_value, _, reason)] = await read_dead_letters(broker, "t", 1)
    assert dead_value == value
    assert reason.stage == stage
    assert reason.original_topic == "t"
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


async def test_many_bad_messages_in_a_row() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), max_concurrency=2)
    seen: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        seen.append(event.body.n)

    async with listener:
        for n in range(20):
            await publish_raw(broker, "t", b"garbage %d" % n)
        await EventEmitter(broker.producer()).emit(Ping(n=1))
        await wait_until(lambda: broker.pending("g") == 0)
    assert seen == [1]
    letters = await read_dead_letters(broker, "t", 20)
    assert {reason.stage for _, _, reason in letters} == {"decode"}


async def test_sigterm_stops_listen_gracefully() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=5.0)
    started = asyncio.Event()
    finished: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        started.set()
        await asyncio.sleep(0.1)
        finished.append(event.body.n)

    listening = asyncio.create_task(listener.listen(handle_signals=True))
    try:
        await EventEmitter(broker.producer()).emit(Ping(n=1))
        await asyncio.wait_for(started.wait(), 2)
        # never send SIGTERM unless the listener installed its handler: it would kill pytest
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(listening, 3)
    finally:
        if not listening.done():
            await listener.stop()
    assert finished == [1]
    assert broker.pending("g") == 0
    assert not listener.running
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed again


async def test_logging_goes_through_dispytch_loggers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))

    @listener.handler(topic="t", event="e", retries=1, retry_interval=0)
    async def handler(event: Event[Body]) -> None:
        raise ValueError("always")

    async with listener:
        await publish_raw(broker, "t", b"garbage")
        await publish_raw(broker, "t", envelope("e", {"n": 1}))
        await publish_raw(broker, "t", envelope("unknown", {"n": 1}))
        await wait_until(lambda: broker.pending("g") == 0)
    ours = [r for r in caplog.records if r.name.startswith("dispytch")]
    assert {r.levelno for r in ours} >= {logging.DEBUG, logging.WARNING, logging.ERROR}
    assert all(r.name.startswith("dispytch.") for r in ours)
    assert [r for r in caplog.records if r.name == "root"] == []
