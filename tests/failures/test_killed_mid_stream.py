"""Scenario 1: a listener killed mid-stream (SIGKILL, again and again) loses no event.

A worker process handles a stream of ticks and records each one (fsync'ed) before its handler
returns. It is killed with SIGKILL at random points of the stream and started again each time.
At the end every tick was handled at least once; the duplicates (handled again because the
kill came between the handler's end and the broker learning of the ack) are reported. The last
worker is stopped (SIGTERM) once the group caught up (see caught_up.py), and then nothing is
unsettled.
The in-memory broker lives in one process: there a crash is a consumer closed without
settling what it holds (which goes back to the group) and a new listener taking over.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dispytch import Event, EventListener

from .caught_up import wait_caught_up
from .events import TICK, Tick, tick_id, ticks
from .processes import Records, Worker, stop_gracefully, wait_for_records

EVENTS = 10_000
KILLS = 5
#: how long one worker run may take to reach its next kill point (group joins included)
PROGRESS_TIMEOUT = 60.0
SEED = int(os.environ.get("FAILURES_SEED", random.randrange(1 << 30)))


async def emit_stream(stream: Any, count: int, batch: int = 500) -> None:
    emitter = stream.emitter()
    async with emitter:
        for start in range(0, count, batch):
            await emitter.emit_many(ticks(stream.topic, range(start, min(start + batch, count))))


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq", "redis", "nats"])
async def test_killed_worker_loses_no_event(
    backend: str, streams: Any, tmp_path: Path, report: Any
) -> None:
    rng = random.Random(SEED)
    stream = await streams(backend, partitions=4)
    records = Records(tmp_path / "handled.log")
    args = [*stream.worker_args(), "--records", str(records.path)]
    log = tmp_path / "worker.log"
    kill_points = sorted(rng.sample(range(EVENTS // 20, EVENTS * 9 // 10), KILLS))
    emitting = asyncio.create_task(emit_stream(stream, EVENTS))
    worker = await Worker(args, log).start()
    killed_at: list[int] = []
    began = time.monotonic()
    try:
        for point in kill_points:
            await wait_for_records(records, point, PROGRESS_TIMEOUT, worker)
            await asyncio.sleep(rng.uniform(0, 0.05))
            await worker.kill()
            killed_at.append(records.refresh().unique)
            worker = await Worker(args, log).start()
        await emitting
        await wait_for_records(records, EVENTS, PROGRESS_TIMEOUT * 2, worker)
        # every id is recorded, but the last worker may still be handling again what a
        # killed one handled and never settled: wait until the group caught up
        catch_up = await wait_caught_up(stream, PROGRESS_TIMEOUT * 2, [worker], records)
        status = await stop_gracefully(records, worker)
        assert status == 0, worker.log_tail()
    finally:
        emitting.cancel()
        await asyncio.gather(emitting, return_exceptions=True)
        await worker.kill()
    records.refresh()
    missing = {tick_id(seq) for seq in range(EVENTS)} - set(records.done)
    assert not missing, f"{len(missing)} events never handled, e.g. {sorted(missing)[:5]}"
    assert len(killed_at) == KILLS
    assert await stream.unsettled() == 0
    report(
        f"{backend}: {EVENTS} events, {KILLS} SIGKILLs at {killed_at} handled, "
        f"lost 0, duplicates {records.duplicates} "
        f"({records.duplicates / KILLS:.0f} per kill), {time.monotonic() - began:.1f}s, "
        f"seed {SEED}; at every id recorded: {catch_up}"
    )


async def test_memory_crash_loses_no_event(streams: Any, report: Any) -> None:
    rng = random.Random(SEED)
    stream = await streams("memory")
    emitter = stream.emitter()
    for start in range(0, EVENTS, 1000):
        await emitter.emit_many(ticks(stream.topic, range(start, start + 1000)))
    handled: Counter[str] = Counter()
    crash_points = sorted(rng.sample(range(EVENTS // 20, EVENTS * 9 // 10), KILLS))
    crashes = 0

    async def run_until(point: int | None) -> None:
        """One listener's life: until `point` events are handled (then it crashes), or until
        the stream is done (then it stops gracefully)."""
        reached = asyncio.Event()
        consumer = stream.consumer()
        listener = EventListener(consumer, shutdown_grace=0)

        @listener.handler(topic=stream.topic, event=TICK)
        async def handle(event: Event[Tick]) -> None:
            await asyncio.sleep(0)  # many handlers in flight at any moment
            handled[event.id] += 1
            if len(handled) >= (point or EVENTS):
                reached.set()
            await asyncio.sleep(0)

        listening = asyncio.create_task(listener.listen(handle_signals=False))
        await asyncio.wait_for(reached.wait(), 30)
        if point is None:
            await wait_caught_up(stream, 30)  # what a crash gave back may still be pending
            await listener.stop()
        else:
            # the crash: the consumer goes away with its unsettled messages (they return to
            # the group); handlers still running are cancelled, their late acks ignored
            await consumer.close()
            listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)

    for point in crash_points:
        await run_until(point)
        crashes += 1
    await run_until(None)
    missing = {tick_id(seq) for seq in range(EVENTS)} - set(handled)
    assert not missing, f"{len(missing)} events never handled, e.g. {sorted(missing)[:5]}"
    assert await stream.unsettled() == 0
    duplicates = sum(handled.values()) - len(handled)
    report(f"memory: {EVENTS} events, {crashes} crashes, lost 0, duplicates {duplicates}")
