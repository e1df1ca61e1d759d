"""The emitter's life in memory: after close(), and across event loops."""

from __future__ import annotations

import asyncio

import pytest

from dispytch import EventBase, EventEmitter, InMemoryBroker
from dispytch.errors import EmitError


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
