"""Scenarios 2 and 7: the broker itself goes away (a REAL stop of the local broker).

- Restarted mid-stream: a worker process consumes a stream while `scripts/brokers restart`
  takes its broker down and up again. Nobody restarts the worker: it reconnects on its own,
  and every event is handled (duplicates are reported).
- Emitting while it is down: `emit` raises a clear exception (EmitTimeoutError,
  BrokerUnavailableError or another ProducerError) within the configured timeout, for an
  emitter that was connected before and for one that starts during the outage; never a
  silent drop. Once the broker is back, the same emitter works again.

These tests are marked `broker_outage` and run at the end of the session (see conftest.py):
while they run, every other test using that broker would fail.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.errors import BrokerUnavailableError, EmitError, EmitTimeoutError, ProducerError

from .caught_up import wait_caught_up
from .events import TICK, Tick, tick_id, ticks
from .processes import Records, Worker, stop_gracefully, wait_for_records, wait_ready
from .waiting import wait_until

pytestmark = pytest.mark.broker_outage

BEFORE = 900
AFTER = 200
#: slow handlers (80 events/s), so that the stream outlasts the broker's stop
HANDLER_SECONDS = 0.05
CONCURRENCY = 4
#: stop the broker when this many are handled: consumption is in full swing
RESTART_AT = 200
EMIT_TIMEOUT = 3.0
#: what `emit` may take beyond its timeout before it raises
EMIT_SLACK = 1.0
#: scripts/brokers runs Redis without persistence (--save "" --appendonly no): a restart
#: empties it, streams and groups included, so no backend can keep what was on it
REDIS_FORGETS = "Redis runs without persistence here: a restart loses every stream (see docs)"


async def emit_until_accepted(emitter: Any, events: list[Any], deadline: float) -> int:
    """Emit, retrying what fails while the broker and the producer come back; the failures."""
    failures = 0
    for start in range(0, len(events), 250):
        while True:
            try:
                await emitter.emit_many(events[start : start + 250], timeout=10)
                break
            except EmitError:
                failures += 1
                assert time.monotonic() < deadline, "the producer did not come back"
                await asyncio.sleep(0.5)
    return failures


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq", "redis", "nats"])
async def test_worker_survives_a_broker_restart_mid_stream(
    backend: str, streams: Any, brokers: Any, tmp_path: Path, report: Any
) -> None:
    if backend == "redis":
        pytest.skip(REDIS_FORGETS)
    stream = await streams(backend, partitions=2)
    async with stream.emitter() as emitter:
        await emitter.emit_many(ticks(stream.topic, range(BEFORE)))
    records = Records(tmp_path / "handled.log")
    args = [
        *stream.worker_args(),
        "--records",
        str(records.path),
        "--delay",
        str(HANDLER_SECONDS),
        "--max-concurrency",
        str(CONCURRENCY),
    ]
    worker = await Worker(args, tmp_path / "worker.log").start()
    try:
        await wait_for_records(records, RESTART_AT, 60, worker)
        # scripts/brokers restart, in its two halves, to see where the stream was meanwhile
        down_took = await brokers.run("stop", backend)
        at_stop = records.refresh().unique
        assert at_stop < BEFORE, "the stream was over before the broker went down"
        up_took = await brokers.run("start", backend)
        back = time.monotonic()
        assert worker.alive, worker.log_tail()
        emitter = stream.emitter()
        failed_emits = await emit_until_accepted(
            emitter, ticks(stream.topic, range(BEFORE, BEFORE + AFTER)), back + 60
        )
        await emitter.close()
        await wait_for_records(records, BEFORE + AFTER, 120, worker)
        caught_up = time.monotonic() - back
        # what was in flight when the broker went away comes back: wait until it is settled
        catch_up = await wait_caught_up(stream, 120, [worker], records)
        status = await stop_gracefully(records, worker)
        assert status == 0, worker.log_tail()
    finally:
        await worker.kill()
    missing = {tick_id(seq) for seq in range(BEFORE + AFTER)} - set(records.done)
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:5]}"
    assert await stream.unsettled() == 0
    report(
        f"{backend}: broker stopped ({down_took:.1f}s) with {at_stop}/{BEFORE} handled, started "
        f"again ({up_took:.1f}s); "
        f"the same worker handled all {BEFORE + AFTER} {caught_up:.1f}s after the broker was "
        f"back; lost 0, duplicates {records.duplicates}; emits retried by the test while the "
        f"producer reconnected: {failed_emits}; at every id recorded: {catch_up}"
    )


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq", "redis", "nats"])
async def test_emit_while_the_broker_is_down_raises_within_the_timeout(
    backend: str, streams: Any, brokers: Any, report: Any
) -> None:
    stream = await streams(backend)
    events = ticks(stream.topic, range(4), keys=0)
    connected = stream.emitter(timeout=EMIT_TIMEOUT)
    await connected.emit(events[0])
    fresh = stream.emitter(timeout=EMIT_TIMEOUT)
    latencies: dict[str, float] = {}
    errors: dict[str, str] = {}
    try:
        await brokers.run("stop", backend)
        attempts = (("connected", connected, events[1]), ("fresh", fresh, events[2]))
        for name, emitter, event in attempts:
            began = time.monotonic()
            with pytest.raises((EmitTimeoutError, BrokerUnavailableError, ProducerError)) as caught:
                await emitter.emit(event)
            latencies[name] = time.monotonic() - began
            errors[name] = type(caught.value).__name__
    finally:
        await brokers.run("start", backend)
    back = time.monotonic()
    await emit_until_accepted(connected, [events[3]], back + 60)
    recovered = time.monotonic() - back

    handled: set[str] = set()
    listener = EventListener(stream.consumer())

    @listener.handler(topic=stream.topic, event=TICK)
    async def handle(event: Event[Tick]) -> None:
        handled.add(event.id)

    async with listener:
        # tick 0 was stored before the restart, which empties a Redis without persistence
        expected = {tick_id(3)} if backend == "redis" else {tick_id(0), tick_id(3)}
        await wait_until(lambda: expected <= handled, 60, "ticks 0 and 3")
        await asyncio.sleep(1.0)  # time for a late copy of the refused ones to show up
    await connected.close()
    await fresh.close()
    late = sorted(handled & {tick_id(1), tick_id(2)})
    report(
        f"{backend}: emit with the broker down raised after "
        f"{latencies['connected']:.2f}s ({errors['connected']}, emitter connected before) and "
        f"{latencies['fresh']:.2f}s ({errors['fresh']}, emitter started during the outage), "
        f"timeout {EMIT_TIMEOUT}s; emitting again worked {recovered:.1f}s after the restart; "
        f"refused events that reached the topic anyway: {late or 'none'}"
    )
    for name, latency in latencies.items():
        assert latency <= EMIT_TIMEOUT + EMIT_SLACK, f"{name}: {latency:.2f}s"


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq"])
async def test_listener_starts_once_the_broker_is_back(
    backend: str, streams: Any, brokers: Any, report: Any
) -> None:
    """The boot loop "listen(); on BrokerUnavailableError wait and listen() again" on one
    listener: the broker is down at the first start, up at a later one."""
    stream = await streams(backend)
    handled: set[str] = set()
    listener = EventListener(stream.consumer(), close_timeout=5)

    @listener.handler(topic=stream.topic, event=TICK)
    async def handle(event: Event[Tick]) -> None:
        handled.add(event.id)

    refused = 0
    try:
        await brokers.run("stop", backend)
        with pytest.raises(BrokerUnavailableError):
            await asyncio.wait_for(listener.listen(handle_signals=False), 60)
        refused += 1
        assert not listener.running
    finally:
        await brokers.run("start", backend)
    back = time.monotonic()
    async with stream.emitter() as emitter:
        await emit_until_accepted(emitter, ticks(stream.topic, range(3)), back + 60)
    while True:  # the broker may take a moment to take consumers again
        try:
            async with listener:
                await wait_until(lambda: len(handled) == 3, 60, "the three ticks")
            break
        except BrokerUnavailableError:
            refused += 1
            assert time.monotonic() < back + 60, "the listener did not start again"
            await asyncio.sleep(0.5)
    assert handled == {tick_id(n) for n in range(3)}
    report(
        f"{backend}: a listener whose start failed with the broker down started on the same "
        f"object {time.monotonic() - back:.1f}s after the restart ({refused} refused start(s))"
    )


#: a worker stopping while its broker is away must be gone within this (grace 3 s, plus the
#: listener's close_timeout, 2 s in the worker, for each of the consumer's stop and close)
EXIT_LIMIT = 10.0


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq", "redis", "nats"])
async def test_sigterm_while_the_broker_is_down_still_exits(
    backend: str, streams: Any, brokers: Any, tmp_path: Path, report: Any
) -> None:
    """A worker told to stop while its broker is away exits all the same (within its grace
    period and some seconds of closing), and nothing is lost: the next worker, once the broker
    is back, handles what the first could not settle, and once the group caught up nothing is
    left unsettled."""
    if backend == "redis":
        pytest.skip(REDIS_FORGETS)
    stream = await streams(backend)
    count = 400
    async with stream.emitter() as emitter:
        await emitter.emit_many(ticks(stream.topic, range(count)))
    records = Records(tmp_path / "handled.log")
    args = [*stream.worker_args(), "--records", str(records.path), "--delay", "0.05",
            "--max-concurrency", "4", "--shutdown-grace", "3"]
    log = tmp_path / "worker.log"
    worker = await Worker(args, log).start()
    hang: AssertionError | None = None
    try:
        await wait_for_records(records, 40, 60, worker)
        await wait_ready(records, worker)
        await brokers.run("stop", backend)
        began = time.monotonic()
        worker.signal(signal.SIGTERM)
        try:
            status: int | None = await worker.wait(EXIT_LIMIT)
        except AssertionError as error:  # it hangs: finish the scenario, then fail
            hang, status = error, None
            await worker.kill()
        exit_took = time.monotonic() - began
        await brokers.run("start", backend)
        at_stop = records.refresh().unique
        worker = await Worker(args, log).start()
        await wait_for_records(records, count, 90, worker)
        catch_up = await wait_caught_up(stream, 90, [worker], records)
        assert await stop_gracefully(records, worker) == 0, worker.log_tail()
    finally:
        await worker.kill()
    assert not {tick_id(seq) for seq in range(count)} - set(records.done)
    assert await stream.unsettled() == 0
    outcome = "hung, SIGKILLed" if hang else f"exit status {status}"
    report(
        f"{backend}: SIGTERM with the broker down: {outcome} after {exit_took:.1f}s "
        f"({at_stop} of {count} handled); the next worker handled the rest; "
        f"duplicates {records.duplicates}; at every id recorded: {catch_up}"
    )
    if hang is not None:
        raise hang
    assert status == 0, f"exit status {status}"
