"""The emitter's life in memory: after close(), and across event loops."""

from __future__ import annotations

import asyncio

import pytest

from dispytch import EventBase, EventEmitter, InMemoryBroker
from dispytch.errors import EmitError, MessageTooLargeError


class Ping(EventBase):
    __topic__ = "pings"
    __event_type__ = "ping"
    n: int


async def test_emit_after_close_is_refused_with_a_clear_error() -> None:
    broker = InMemoryBroker()
    emitter = EventEmitter(broker.producer())
    await emitter.emit(Ping(n=1))
    await emitter.close()
    with pytest.raises(EmitError, match="closed"):
        await emitter.emit(Ping(n=2))
    with pytest.raises(EmitError, match="closed"):
        await emitter.emit_many([Ping(n=3)])
    with pytest.raises(EmitError, match="closed"):
        async with emitter:
            pass
    await emitter.close()  # closing again does nothing
    assert broker.backlog("pings") == 1


def test_an_emitter_works_in_a_second_event_loop() -> None:
    broker = InMemoryBroker()
    emitter = EventEmitter(broker.producer(), timeout=5)
    asyncio.run(emitter.emit(Ping(n=1)))
    asyncio.run(emitter.emit(Ping(n=2)))
    asyncio.run(emitter.emit_many([Ping(n=3)]))
    asyncio.run(emitter.close())
    assert broker.backlog("pings") == 3


class Sized(EventBase):
    __topic__ = "sized"
    __event_type__ = "sized"
    text: str


async def test_a_partial_emit_many_says_which_events_were_confirmed() -> None:
    broker = InMemoryBroker(max_message_bytes=200)
    emitter = EventEmitter(broker.producer())
    small, big, after = Sized(text="a"), Sized(text="x" * 500), Sized(text="b")
    with pytest.raises(MessageTooLargeError) as caught:  # the class it always was
        await emitter.emit_many([small, big, after])
    assert caught.value.confirmed == (small,)
    assert caught.value.unconfirmed == (big, after)
    assert broker.backlog("sized") == 1


async def test_emit_many_that_sends_nothing_lists_every_event_as_unconfirmed() -> None:
    broker = InMemoryBroker()
    emitter = EventEmitter(broker.producer())
    events = [Sized(text="a"), Sized(text="")]

    class Broken(Sized):
        __topic__ = "sized:{missing}"

    broken = Broken(text="c")
    with pytest.raises(EmitError) as caught:
        await emitter.emit_many([*events, broken])
    assert caught.value.confirmed == ()
    assert caught.value.unconfirmed == (*events, broken)
    await emitter.close()
    with pytest.raises(EmitError) as closed:
        await emitter.emit_many(events)
    assert closed.value.unconfirmed == tuple(events)
    assert broker.backlog("sized") == 0
