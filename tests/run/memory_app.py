"""A service on the in-memory broker for the `dispytch run` tests that need no broker.

`make_listener` emits MEMORY_EVENTS events (default 1) to itself once it listens; its handler
writes `S <id>` to MEMORY_RECORDS when it starts, sleeps MEMORY_DELAY seconds and writes
`D <id>`; `R <pid>` once SIGTERM stops the listener gracefully.
"""

from __future__ import annotations

import asyncio
import os

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from tests.failures.worker import Recorder, announce_ready

_background: set[asyncio.Task[None]] = set()


class Ping(EventBase):
    __topic__ = "pings"
    __event_type__ = "ping"

    n: int


not_a_listener = 42


async def make_listener() -> EventListener:
    broker = InMemoryBroker()
    listener = EventListener(
        broker.consumer(), shutdown_grace=float(os.environ.get("MEMORY_GRACE", "10"))
    )
    record = Recorder(os.environ["MEMORY_RECORDS"], fsync=True)
    delay = float(os.environ.get("MEMORY_DELAY", "0"))

    @listener.handler(topic="pings", event="ping")
    async def handle(event: Event[Ping]) -> None:
        record("S", event.id)
        await asyncio.sleep(delay)
        record("D", event.id)

    async def emit_when_ready() -> None:
        await announce_ready(record)
        async with EventEmitter(broker.producer()) as emitter:
            for n in range(int(os.environ.get("MEMORY_EVENTS", "1"))):
                await emitter.emit(Ping(id=f"ping-{n}", n=n))

    task = asyncio.get_running_loop().create_task(emit_when_ready())
    _background.add(task)
    return listener
