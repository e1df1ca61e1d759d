"""The service that the `dispytch run` tests start: `dispytch run tests.run.app:make_listener`.

Configured by environment variables (each worker of a supervisor gets the same ones):
RUN_BACKEND (kafka, rabbitmq), RUN_TOPIC, RUN_GROUP, RUN_EXCHANGE (RabbitMQ), RUN_RECORDS (a
path; `{pid}` in it becomes the worker's pid, so each worker has its own file), RUN_DELAY
(seconds each handler takes), RUN_RECORD_START (also record `S <id>` when a handler starts),
RUN_SHUTDOWN_GRACE. Records are written like `tests.failures.worker`'s: one fsync'ed line per
handled event, `R <pid>` once SIGTERM stops the listener gracefully.
"""

from __future__ import annotations

import asyncio
import os

from dispytch import Event, EventListener
from tests.failures.clients import consumer
from tests.failures.events import TICK, Tick
from tests.failures.worker import Recorder, announce_ready

_background: set[asyncio.Task[None]] = set()


async def make_listener() -> EventListener:
    env = os.environ
    listener = EventListener(
        consumer(env["RUN_BACKEND"], env["RUN_GROUP"], env.get("RUN_EXCHANGE")),
        shutdown_grace=float(env.get("RUN_SHUTDOWN_GRACE", "20")),
        close_timeout=2.0,
    )
    record = Recorder(env["RUN_RECORDS"].replace("{pid}", str(os.getpid())), fsync=True)
    delay = float(env.get("RUN_DELAY", "0"))
    record_start = bool(env.get("RUN_RECORD_START"))

    @listener.handler(topic=env["RUN_TOPIC"], event=TICK)
    async def handle(event: Event[Tick]) -> None:
        if record_start:
            record("S", event.id)
        if delay:
            await asyncio.sleep(delay)
        record("D", event.id)

    task = asyncio.get_running_loop().create_task(announce_ready(record))
    _background.add(task)
    return listener
