"""Middleware at its three points: order, what each sees, and the core's guarantees whatever a
middleware does (settled exactly once, a raise is a failure like a handler's)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener, HandlerGroup, InMemoryBroker
from dispytch.backends.base import OutgoingMessage, Producer
from dispytch.errors import EmitTimeoutError, ProducerError
from dispytch.middleware import (
    CallNext,
    EmitContext,
    HandlerCall,
    KeyLock,
    LogOutcomes,
    MessageContext,
    header_equals,
    skip_unless,
)
from dispytch.middleware import context as middleware_context
from tests.core.helpers import (
    ScriptedConsumer,
    ScriptedDelivery,
    envelope,
    publish_raw,
    read_dead_letters,
    wait_until,
)

TOPIC = "orders"


class Order(BaseModel):
    n: int


def _listener(broker: InMemoryBroker, group: str = "g") -> EventListener:
    return EventListener(broker.consumer(group))


async def _run(listener: EventListener, broker: InMemoryBroker, *values: bytes, **kw: Any) -> None:
    async with listener:
        for value in values:
            await publish_raw(broker, TOPIC, value, **kw)
        await wait_until(lambda: broker.pending("g") == 0, what="every message settled")


async def test_handler_call_middleware_order_is_listener_then_group_then_handler() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    group = HandlerGroup(default_topic=TOPIC)
    trail: list[str] = []

    def recorder(name: str) -> Any:
        async def middleware(call: HandlerCall, call_next: CallNext) -> Any:
            trail.append(f"{name}>")
            result = await call_next()
            trail.append(f"<{name}")
            return result

        return middleware

    @group.handler(event="order", middleware=[recorder("handler1"), recorder("handler2")])
    async def on_order(event: Event[Order]) -> None:
        trail.append("handler")

    group.handler_middleware(recorder("group"))
    listener.handler_middleware(recorder("listener1"))
    listener.handler_middleware(recorder("listener2"))
    listener.add_handler_group(group)
    await _run(listener, broker, envelope("order", {"n": 1}))
    assert trail == [
        "listener1>",
        "listener2>",
        "group>",
        "handler1>",
        "handler2>",
        "handler",
        "<handler2",
        "<handler1",
        "<group",
        "<listener2",
        "<listener1",
    ]


async def test_message_middleware_sees_the_raw_message_before_and_the_outcome_after() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), dead_letter_unhandled=False)
    seen: list[tuple[Any, ...]] = []

    @listener.message_middleware
    async def watch(message: MessageContext, call_next: CallNext) -> None:
        before = (message.value, dict(message.headers), message.topic, message.event_id)
        assert message.outcome is None
        await call_next()
        assert message.outcome is not None
        seen.append((*before, message.event_id, message.outcome.kind, message.outcome.reason))

    @listener.handler(topic=TOPIC, event="order")
    async def on_order(event: Event[Order]) -> None:
        if event.body.n == 2:
            raise ValueError("two")

    good = envelope("order", {"n": 1}, event_id="e1")
    bad = envelope("order", {"n": 2}, event_id="e2")
    other = envelope("other", {}, event_id="e3")
    await _run(listener, broker, good, bad, other, b"not json", headers={"h": "v"})
    assert [(s[0], s[1], s[2], s[3]) for s in seen] == [
        (value, {"h": "v"}, TOPIC, None) for value in (good, bad, other, b"not json")
    ]
    outcomes = [(s[4], s[5], s[6] and (s[6].stage, s[6].error_type)) for s in seen]
    assert outcomes == [
        ("e1", "handled", None),
        ("e2", "dead_lettered", ("handler", "ValueError")),
        ("e3", "no_handler", None),
        (None, "dead_lettered", ("decode", "ValueError")),
    ]


async def test_message_middleware_sees_a_delayed_retry_and_a_give_back() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    kinds: list[str] = []
    first_failed = asyncio.Event()

    @listener.message_middleware
    async def watch(message: MessageContext, call_next: CallNext) -> None:
        await call_next()
        assert message.outcome is not None
        kinds.append(message.outcome.kind)

    @listener.handler(topic=TOPIC, event="slow", retries=1, retry_interval=60)
    async def slow(event: Event[Order]) -> None:
        first_failed.set()
        raise RuntimeError("try again in a minute")

    @listener.handler(
        topic=TOPIC, event="later", retries=1, retry_interval=0.01, delayed_retries=True
    )
    async def later(event: Event[Order]) -> None:
        if event.attempt == 1:
            raise RuntimeError("once")

    async with listener:
        await publish_raw(broker, TOPIC, envelope("later", {"n": 1}))
        await wait_until(lambda: kinds == ["retried_later", "handled"], what="a delayed retry")
        await publish_raw(broker, TOPIC, envelope("slow", {"n": 1}))
        await asyncio.wait_for(first_failed.wait(), 3)
    assert kinds == ["retried_later", "handled", "given_back"]


async def _scripted(middleware: Any, *, fails: bool = False) -> tuple[ScriptedDelivery, list[int]]:
    """Run one message through `middleware` on a listener whose consumer records how it was
    settled; the handler's calls are counted."""
    delivery = ScriptedDelivery(TOPIC, envelope("order", {"n": 1}))
    consumer = ScriptedConsumer([delivery])
    listener = EventListener(consumer)
    calls: list[int] = []
    listener.message_middleware(middleware)

    @listener.handler(topic=TOPIC, event="order")
    async def on_order(event: Event[Order]) -> None:
        calls.append(event.attempt)
        if fails:
            raise ValueError("handler")

    async with listener:
        await wait_until(lambda: bool(delivery.outcomes), what="the message settled")
        await asyncio.sleep(0.05)  # a second settle would come now; none may
    return delivery, calls


async def test_a_message_middleware_raising_before_call_next_dead_letters_the_message() -> None:
    async def broken(message: MessageContext, call_next: CallNext) -> None:
        raise KeyError("bug before")

    delivery, calls = await _scripted(broken)
    assert delivery.outcomes == ["dead_letter"]
    assert delivery.reason is not None
    assert (delivery.reason.stage, delivery.reason.error_type) == ("middleware", "KeyError")
    assert calls == []


async def test_a_message_middleware_raising_after_call_next_settles_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(message: MessageContext, call_next: CallNext) -> None:
        await call_next()
        raise KeyError("bug after")

    delivery, calls = await _scripted(broken)
    assert delivery.outcomes == ["ack"]
    assert calls == [1]
    assert "raised after the message" in caplog.text


async def test_a_message_middleware_calling_call_next_twice_runs_and_settles_once() -> None:
    second: list[BaseException] = []

    async def twice(message: MessageContext, call_next: CallNext) -> None:
        await call_next()
        try:
            await call_next()
        except RuntimeError as error:
            second.append(error)

    delivery, calls = await _scripted(twice)
    assert delivery.outcomes == ["ack"]
    assert calls == [1]
    assert "twice" in str(second[0])


async def test_a_message_middleware_calling_call_next_concurrently_settles_once() -> None:
    async def concurrently(message: MessageContext, call_next: CallNext) -> None:
        await asyncio.gather(call_next(), call_next(), return_exceptions=True)

    delivery, calls = await _scripted(concurrently, fails=True)
    assert delivery.outcomes == ["dead_letter"]
    assert calls == [1]


async def test_a_message_middleware_that_never_calls_call_next_acks_the_message() -> None:
    async def drop(message: MessageContext, call_next: CallNext) -> None:
        return None

    delivery, calls = await _scripted(drop)
    assert delivery.outcomes == ["ack"]
    assert calls == []


async def test_a_handler_middleware_that_raises_is_retried_then_dead_lettered() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    attempts: list[tuple[int, int]] = []
    handled: list[int] = []

    @listener.handler_middleware
    async def flaky(call: HandlerCall, call_next: CallNext) -> Any:
        attempts.append((call.event.body.n, call.attempt))
        if call.event.body.n == 2 or call.attempt == 1:
            raise ConnectionError("middleware")
        return await call_next()

    @listener.handler(topic=TOPIC, event="order", retries=2, retry_interval=0.001)
    async def on_order(event: Event[Order]) -> None:
        handled.append(event.body.n)

    await _run(listener, broker, envelope("order", {"n": 1}), envelope("order", {"n": 2}))
    assert handled == [1]
    assert sorted(attempts) == [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)]
    [(_, _, reason)] = await read_dead_letters(broker, TOPIC, 1)
    assert (reason.stage, reason.error_type, reason.attempts) == ("handler", "ConnectionError", 3)


async def test_a_handler_middleware_may_skip_the_call_or_replace_its_result() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    results: list[Any] = []
    handled: list[int] = []

    @listener.handler_middleware
    async def outer(call: HandlerCall, call_next: CallNext) -> Any:
        results.append(await call_next())
        return None

    @listener.handler_middleware
    async def inner(call: HandlerCall, call_next: CallNext) -> Any:
        if call.event.body.n == 2:
            return "skipped"
        await call_next()
        return "replaced"

    @listener.handler(topic=TOPIC, event="order")
    async def on_order(event: Event[Order]) -> str:
        handled.append(event.body.n)
        return "original"

    await _run(listener, broker, envelope("order", {"n": 1}), envelope("order", {"n": 2}))
    assert handled == [1]
    assert sorted(results) == ["replaced", "skipped"]
    assert broker.pending("g") == 0


async def test_a_handler_middleware_calling_call_next_twice_fails_the_attempt() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    calls: list[int] = []

    @listener.handler_middleware
    async def twice(call: HandlerCall, call_next: CallNext) -> Any:
        await call_next()
        return await call_next()

    @listener.handler(topic=TOPIC, event="order")
    async def on_order(event: Event[Order]) -> None:
        calls.append(event.body.n)

    await _run(listener, broker, envelope("order", {"n": 1}))
    assert calls == [1]
    [(_, _, reason)] = await read_dead_letters(broker, TOPIC, 1)
    assert (reason.stage, reason.error_type) == ("handler", "RuntimeError")


async def test_without_middleware_no_context_is_built_and_chains_are_composed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The no-cost path is taken without middleware (no context object per message), and
    with middleware the chain is composed at start, not per message."""
    built: list[str] = []
    links: list[str] = []
    for cls in (MessageContext, HandlerCall):
        original_init = cls.__init__

        def counting_init(self: Any, *args: Any, _init: Any = original_init, **kw: Any) -> None:
            built.append(type(self).__name__)
            _init(self, *args, **kw)

        monkeypatch.setattr(cls, "__init__", counting_init)
    original_link = middleware_context._link

    def counting_link(*args: Any) -> Any:
        links.append("link")
        return original_link(*args)

    monkeypatch.setattr(middleware_context, "_link", counting_link)

    broker = InMemoryBroker()
    listener = _listener(broker)

    @listener.handler(topic=TOPIC, event="order")
    async def on_order(event: Event[Order]) -> None:
        pass

    await _run(listener, broker, *(envelope("order", {"n": n}) for n in range(20)))
    assert built == []
    assert links == []

    broker = InMemoryBroker()
    listener = _listener(broker)
    listener.add_handler_group(HandlerGroup())

    async def no_op(context: Any, call_next: CallNext) -> Any:
        return await call_next()

    listener.message_middleware(no_op)
    listener.handler_middleware(no_op)
    listener.handler(topic=TOPIC, event="order")(on_order)
    await _run(listener, broker, *(envelope("order", {"n": n}) for n in range(20)))
    assert built.count("MessageContext") == 20
    assert built.count("HandlerCall") == 20
    assert links == ["link", "link"]  # one message link, one handler link: at start only


async def test_middleware_cannot_be_added_to_a_running_listener() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)

    @listener.handler(topic=TOPIC, event="order")
    async def on_order(event: Event[Order]) -> None:
        pass

    async def no_op(context: Any, call_next: CallNext) -> Any:
        return await call_next()

    async with listener:
        with pytest.raises(RuntimeError):
            listener.message_middleware(no_op)
        with pytest.raises(RuntimeError):
            listener.handler_middleware(no_op)


class Placed(EventBase):
    __topic__ = TOPIC
    __event_type__ = "order"
    n: int


def _n(event: EventBase) -> int:
    assert isinstance(event, Placed)
    return event.n


class _Refusing(Producer):
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def start(self) -> None:
        pass

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        raise self.error

    async def close(self) -> None:
        pass


async def test_emit_middleware_sees_event_and_message_before_and_the_outcome_after() -> None:
    broker = InMemoryBroker()
    seen: list[tuple[Any, ...]] = []

    async def stamp(emit: EmitContext, call_next: CallNext) -> None:
        emit.message.headers["trace"] = "t1"
        assert emit.outcome is None
        try:
            await call_next()
        finally:
            seen.append((_n(emit.event), emit.message.topic, emit.outcome, type(emit.error)))

    emitter = EventEmitter(broker.producer(), middleware=[stamp])
    await emitter.emit(Placed(n=1))
    reader = broker.consumer("r", [TOPIC])
    await reader.start([])
    delivery = await asyncio.wait_for(reader.receive(), 3)
    assert delivery.headers["trace"] == "t1"
    assert seen == [(1, TOPIC, "sent", type(None))]

    for error, kind in ((EmitTimeoutError("slow"), "timed_out"), (ProducerError("no"), "failed")):
        refusing = EventEmitter(_Refusing(error), middleware=[stamp])
        with pytest.raises(type(error)):
            await refusing.emit(Placed(n=2))
        assert seen[-1] == (2, TOPIC, kind, type(error))


async def test_emit_many_goes_through_emit_middleware_for_each_event() -> None:
    broker = InMemoryBroker()
    outcomes: list[tuple[int, str | None]] = []
    emitter = EventEmitter(broker.producer())

    @emitter.emit_middleware
    async def watch(emit: EmitContext, call_next: CallNext) -> None:
        if _n(emit.event) == 3:
            raise ProducerError("refused by middleware")
        await call_next()
        outcomes.append((_n(emit.event), emit.outcome))

    with pytest.raises(ProducerError) as raised:
        await emitter.emit_many([Placed(n=n) for n in range(5)])
    assert sorted(outcomes) == [(n, "sent") for n in (0, 1, 2, 4)]
    assert [_n(e) for e in raised.value.unconfirmed] == [3]
    assert sorted(_n(e) for e in raised.value.confirmed) == [0, 1, 2, 4]


async def test_skip_unless_handles_only_what_the_predicate_accepts() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    handled: list[int] = []

    @listener.handler(
        topic=TOPIC, event="order", middleware=[skip_unless(header_equals("tenant", "a"))]
    )
    async def tenant_a(event: Event[Order]) -> None:
        handled.append(event.body.n)

    @listener.handler(
        topic=TOPIC, event="order", middleware=[skip_unless(lambda e: e.body.n % 2 == 0)]
    )
    async def even(event: Event[Order]) -> None:
        handled.append(-event.body.n)

    async with listener:
        await publish_raw(broker, TOPIC, envelope("order", {"n": 1}), headers={"tenant": "a"})
        await publish_raw(broker, TOPIC, envelope("order", {"n": 2}), headers={"tenant": "b"})
        await wait_until(lambda: broker.pending("g") == 0, what="every message settled")
    assert sorted(handled) == [-2, 1]


async def test_key_lock_runs_one_call_per_key_at_a_time_and_forgets_idle_keys() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), max_concurrency=20)
    lock = KeyLock(key=lambda event: event.body.n % 2)
    running: dict[int, int] = {0: 0, 1: 0}
    most: dict[int, int] = {0: 0, 1: 0}
    overlap = asyncio.Event()

    @listener.handler(topic=TOPIC, event="order", middleware=[lock])
    async def on_order(event: Event[Order]) -> None:
        parity = event.body.n % 2
        running[parity] += 1
        most[parity] = max(most[parity], running[parity])
        if running[0] and running[1]:
            overlap.set()  # different keys do run together
        await asyncio.sleep(0.005)
        running[parity] -= 1

    await _run(listener, broker, *(envelope("order", {"n": n}) for n in range(20)))
    assert most == {0: 1, 1: 1}
    assert overlap.is_set()
    assert len(lock) == 0


async def test_log_outcomes_logs_each_outcome_with_the_event_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    listener.message_middleware(LogOutcomes())

    @listener.handler(topic=TOPIC, event="order")
    async def on_order(event: Event[Order]) -> None:
        if event.body.n == 2:
            raise ValueError("two")

    with caplog.at_level(logging.INFO, logger="dispytch.outcomes"):
        await _run(
            listener,
            broker,
            envelope("order", {"n": 1}, event_id="id-1"),
            envelope("order", {"n": 2}, event_id="id-2"),
        )
    records = [r for r in caplog.records if r.name == "dispytch.outcomes"]
    fields = sorted((r.event_id, r.outcome, r.stage, r.levelno) for r in records)  # type: ignore[attr-defined]
    assert fields == [
        ("id-1", "handled", None, logging.INFO),
        ("id-2", "dead_lettered", "handler", logging.ERROR),
    ]
