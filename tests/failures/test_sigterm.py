"""Scenario 3: SIGTERM during a burst stops a worker gracefully.

The worker's handlers take a while; SIGTERM arrives while many of them run. Every handler that
had started finishes (its end is recorded), the process exits with status 0, and everything it
finished was settled: the next worker resumes with the rest and handles nothing twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from dispytch import Event, EventListener

from .events import TICK, Tick, tick_id, ticks
from .processes import Records, Worker, stop_gracefully, wait_for_records
from .waiting import wait_until

EVENTS = 300
HANDLER_SECONDS = 0.3
CONCURRENCY = 20
#: SIGTERM once this many events are done: the burst is well under way
SIGTERM_AFTER = 60


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq", "redis", "nats"])
async def test_sigterm_mid_burst_finishes_in_flight_work(
    backend: str, streams: Any, tmp_path: Path, report: Any
) -> None:
    stream = await streams(backend, partitions=2)
    async with stream.emitter() as emitter:
        await emitter.emit_many(ticks(stream.topic, range(EVENTS), keys=0))
    first = Records(tmp_path / "first.log")
    second = Records(tmp_path / "second.log")
    options = [
        *stream.worker_args(),
        "--delay",
        str(HANDLER_SECONDS),
        "--max-concurrency",
        str(CONCURRENCY),
        "--shutdown-grace",
        "20",
        "--record-start",
    ]
    log = tmp_path / "worker.log"
    worker = await Worker([*options, "--records", str(first.path)], log).start()
    try:
        await wait_for_records(first, SIGTERM_AFTER, 60, worker)
        # SIGTERM while handlers run (on a loaded machine the worker may be between batches)
        deadline = time.monotonic() + 20
        while not (in_flight := set(first.refresh().started) - set(first.done)):
            assert time.monotonic() < deadline, "no handler was running within 20s"
            await asyncio.sleep(0.01)
        status = await stop_gracefully(first, worker)
        assert status == 0, f"exit status {status}\n{worker.log_tail()}"
        first.refresh()
        unfinished = set(first.started) - set(first.done)
        assert not unfinished, f"handlers cut short by SIGTERM: {sorted(unfinished)}"
        assert in_flight, "SIGTERM came when no handler was running: no burst to interrupt"

        worker = await Worker([*options, "--records", str(second.path)], log).start()
        await wait_for_records(second, EVENTS - first.unique, 60, worker)
        assert await stop_gracefully(second, worker) == 0, worker.log_tail()
    finally:
        await worker.kill()
    second.refresh()
    handled = set(first.done) | set(second.done)
    assert handled == {tick_id(seq) for seq in range(EVENTS)}
    twice = set(first.done) & set(second.done)
    assert not twice, f"handled again after a graceful stop: {sorted(twice)}"
    assert max(first.done.values()) == 1
    assert max(second.done.values()) == 1
    assert await stream.unsettled() == 0
    report(
        f"{backend}: SIGTERM with {len(in_flight)} handlers in flight: all finished, exit 0; "
        f"first run {first.unique}, second run {second.unique}, duplicates 0"
    )


async def test_memory_stop_mid_burst_finishes_in_flight_work(streams: Any) -> None:
    """The same in one process: `stop()` (what SIGTERM calls) lets running handlers finish."""
    stream = await streams("memory")
    await stream.emitter().emit_many(ticks(stream.topic, range(EVENTS), keys=0))
    started: set[str] = set()
    done: list[str] = []
    in_flight: set[str] = set()
    burst = asyncio.Event()

    def listener_for_run() -> EventListener:
        listener = EventListener(stream.consumer(), max_concurrency=CONCURRENCY)

        @listener.handler(topic=stream.topic, event=TICK)
        async def handle(event: Event[Tick]) -> None:
            started.add(event.id)
            await asyncio.sleep(0.002 * (event.body.seq % 7 + 1))
            done.append(event.id)
            if len(done) == SIGTERM_AFTER:
                in_flight.update(started - set(done))
                burst.set()

        return listener

    async with listener_for_run():
        await asyncio.wait_for(burst.wait(), 10)
    assert in_flight
    assert started == set(done), "stop() cut handlers short"
    async with listener_for_run():
        while len(done) < EVENTS:
            await asyncio.sleep(0.005)
    assert sorted(done) == sorted(tick_id(seq) for seq in range(EVENTS))
    assert await stream.unsettled() == 0


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq", "redis", "nats"])
async def test_sigterm_past_the_grace_period_gives_unfinished_work_back(
    backend: str, streams: Any, tmp_path: Path, report: Any
) -> None:
    """Handlers longer than `shutdown_grace` are cancelled at SIGTERM; the process still exits
    0, and their events (never recorded as done) are handled by the next worker."""
    stream = await streams(backend)
    count = 10
    async with stream.emitter() as emitter:
        await emitter.emit_many(ticks(stream.topic, range(count), keys=0))
    first = Records(tmp_path / "first.log")
    second = Records(tmp_path / "second.log")
    base = [*stream.worker_args(), "--record-start", "--max-concurrency", "10"]
    log = tmp_path / "worker.log"
    slow = ["--delay", "30", "--shutdown-grace", "0.5"]
    worker = await Worker([*base, *slow, "--records", str(first.path)], log).start()
    try:
        await wait_until(lambda: len(first.refresh().started) == count, 60, "handlers started")
        status = await stop_gracefully(first, worker, 15)
        assert status == 0, worker.log_tail()
        assert not first.refresh().done, "a 30 s handler finished within the grace period?"
        worker = await Worker([*base, "--records", str(second.path)], log).start()
        await wait_for_records(second, count, 60, worker)
        assert await stop_gracefully(second, worker) == 0, worker.log_tail()
    finally:
        await worker.kill()
    assert set(second.done) == {tick_id(seq) for seq in range(count)}
    assert await stream.unsettled() == 0
    report(f"{backend}: {count} handlers cancelled after the grace period, exit 0, all redelivered")


@pytest.mark.parametrize("backend", ["memory", "kafka", "rabbitmq", "redis", "nats"])
async def test_stop_during_a_retry_wait_gives_the_event_back(
    backend: str, streams: Any
) -> None:
    """Stopping while a handler waits to retry in place neither dead-letters the event nor
    loses it: it goes back to the broker, and the next listener gets it (from attempt 1)."""
    stream = await streams(backend)
    async with stream.emitter() as emitter:
        await emitter.emit(ticks(stream.topic, [0])[0])
    attempts: list[int] = []

    def listener_for_run(fail: bool) -> EventListener:
        listener = EventListener(stream.consumer(), shutdown_grace=5)

        @listener.handler(topic=stream.topic, event=TICK, retries=3, retry_interval=30)
        async def handle(event: Event[Tick]) -> None:
            attempts.append(event.attempt)
            if fail:
                raise ConnectionError("downstream is down")

        return listener

    async with listener_for_run(fail=True):
        await wait_until(lambda: len(attempts) == 1, 60, "the first attempt")
    async with listener_for_run(fail=False):
        await wait_until(lambda: len(attempts) == 2, 60, "the event to come back")
    # brokers that count deliveries (Redis Streams, NATS JetStream's num_delivered) give the
    # core that count as the attempt of an event without a dispytch-attempt header: the event
    # comes back as a later attempt there (NATS: 2, or 3 when one of the stopping consumer's
    # last pull requests got it back once more), from attempt 1 on brokers that do not count
    if backend == "nats":
        assert attempts[0] == 1, attempts
        assert attempts[1] in (2, 3), attempts
    else:
        assert attempts == [1, 2 if backend == "redis" else 1]
    assert await stream.unsettled() == 0
    await stream.assert_no_dead_letters()
