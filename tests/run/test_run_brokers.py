"""`dispytch run --workers 2` with real processes on Kafka and RabbitMQ.

- Two workers in one group share the events; a SIGTERM to the supervisor mid-burst lets every
  running handler finish and exits 0; a second run handles the rest: nothing lost, nothing
  handled twice, nothing left unsettled.
- One worker SIGKILLed mid-stream is restarted by the supervisor (which logs why) and the
  events it had in flight are delivered again: nothing lost.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.failures.events import tick_id, ticks

from .processes import RecordSet, Service, wait_for

APP = "tests.run.app:make_listener"
ROUND = 32
BURST = 300
HANDLER_SECONDS = "0.3"


def service(stream: Any, folder: Path, log: Path, **env: str) -> Service:
    folder.mkdir(exist_ok=True)
    settings = {
        "RUN_BACKEND": stream.backend,
        "RUN_TOPIC": stream.topic,
        "RUN_GROUP": stream.group,
        "RUN_RECORDS": RecordSet(folder).template,
        "RUN_RECORD_START": "1",
        **({"RUN_EXCHANGE": stream.exchange} if stream.backend == "rabbitmq" else {}),
        **env,
    }
    return Service([APP, "--workers", "2", "--stop-timeout", "60"], log, settings)


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq"])
async def test_two_workers_share_the_events_and_sigterm_drains_them(
    backend: str, streams: Any, tmp_path: Path, report: Any
) -> None:
    stream = await streams(backend, partitions=4)
    log = tmp_path / "service.log"
    first = RecordSet(tmp_path / "first")
    run = service(stream, first.folder, log, RUN_DELAY=HANDLER_SECONDS)
    emitted: list[str] = []
    await run.start()
    try:
        await wait_for(lambda: len(first.refresh().ready) == 2, 60, "two workers", run)
        async with stream.emitter() as emitter:
            # rounds until both workers have handled events (Kafka: both joined the group)
            while sum(1 for r in first.refresh().by_pid.values() if r.done) < 2:
                assert len(emitted) < 100 * ROUND, "one worker never got any event"
                batch = ticks(stream.topic, range(len(emitted), len(emitted) + ROUND))
                await emitter.emit_many(batch)
                emitted += [event.id for event in batch]
                count = len(emitted)
                await wait_for(lambda count=count: len(first.refresh().done) == count, 60,
                               "the round to be handled", run)
            burst = ticks(stream.topic, range(len(emitted), len(emitted) + BURST))
            await emitter.emit_many(burst)
            emitted += [event.id for event in burst]
        await wait_for(lambda: len(first.refresh().done) >= len(emitted) - BURST + 60, 60,
                       "the burst to be under way", run)
        in_flight = set(first.refresh().started) - set(first.done)
        status = await run.terminate(90)
        assert status == 0, run.log_tail(80)
        first.refresh()
        assert set(first.started) == set(first.done), "SIGTERM cut handlers short"
        assert in_flight, "SIGTERM came when no handler ran: nothing to drain"
        assert "all drained" in run.log_text()

        second = RecordSet(tmp_path / "second")
        run = await service(stream, second.folder, log).start()
        await wait_for(lambda: len(first.done) + len(second.refresh().done) >= len(emitted),
                       90, "the rest to be handled", run)
        assert await run.terminate(90) == 0, run.log_tail(80)
    finally:
        await run.kill_all()
    second.refresh()
    assert set(first.done) | set(second.done) == set(emitted)
    twice = set(first.done) & set(second.done)
    assert not twice, f"handled again after a graceful stop: {sorted(twice)[:10]}"
    assert max(first.done.values()) == 1
    assert max(second.done.values(), default=1) == 1
    assert await stream.unsettled() == 0
    shares = sorted(len(r.done) for r in first.by_pid.values())
    report(f"{backend}: {len(emitted)} events; first run's workers handled {shares}, "
           f"{len(in_flight)} in flight at SIGTERM all finished; second run {len(second.done)}; "
           "duplicates 0")


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq"])
async def test_a_killed_worker_is_restarted_and_its_events_redelivered(
    backend: str, streams: Any, tmp_path: Path, report: Any
) -> None:
    events = 2000
    stream = await streams(backend, partitions=4)
    records = RecordSet(tmp_path / "records")
    run = service(stream, records.folder, tmp_path / "service.log", RUN_DELAY="0.02")
    await run.start()
    try:
        await wait_for(lambda: len(records.refresh().ready) == 2, 60, "two workers", run)
        async with stream.emitter() as emitter:
            await emitter.emit_many(ticks(stream.topic, range(events)))

        def victim_busy() -> bool:
            for pid, found in records.refresh().by_pid.items():
                if len(found.done) >= 50 and set(found.started) - set(found.done):
                    return pid in run.worker_pids()
            return False

        await wait_for(victim_busy, 90, "a worker with handlers in flight", run)
        victim = next(pid for pid, found in records.by_pid.items()
                      if len(found.done) >= 50 and set(found.started) - set(found.done))
        os.kill(victim, signal.SIGKILL)
        lost_in_flight = set(records.by_pid[victim].refresh().started) - set(
            records.by_pid[victim].done)
        await wait_for(lambda: len(records.refresh().ready) == 3, 60, "the restarted worker", run)
        await wait_for(lambda: len(records.refresh().done) == events, 120, "every event", run)
        assert f"(pid {victim}) was killed by SIGKILL" in run.log_text()
        assert await run.terminate(90) == 0, run.log_tail(80)
    finally:
        await run.kill_all()
    records.refresh()
    assert set(records.done) == {tick_id(seq) for seq in range(events)}
    assert lost_in_flight, "the kill came when the worker ran no handler"
    others = {pid: r for pid, r in records.by_pid.items() if pid != victim}
    redelivered = {i for i in lost_in_flight if any(i in r.done for r in others.values())}
    assert redelivered == lost_in_flight
    assert await stream.unsettled() == 0
    report(f"{backend}: killed worker had {len(lost_in_flight)} handlers in flight, all handled "
           f"again by others; duplicates {sum(records.done.values()) - events}")
