"""Scenario 1, with company: two workers share a consumer group and one of them is killed
again and again. The group rebalances each time (Kafka moves partitions, RabbitMQ requeues the
killed member's messages to the survivor); no event is lost. Both are stopped (SIGTERM) once
the group caught up (see caught_up.py), and then nothing is unsettled."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from .caught_up import wait_caught_up
from .events import tick_id, ticks
from .processes import Records, Worker, stop_gracefully, wait_for_records
from .test_killed_mid_stream import SEED

EVENTS = 6000
KILLS = 3


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq", "redis", "nats"])
async def test_killing_one_of_two_members_loses_no_event(
    backend: str, streams: Any, tmp_path: Path, report: Any
) -> None:
    rng = random.Random(SEED)
    stream = await streams(backend, partitions=4)
    records = Records(tmp_path / "handled.log")
    args = [*stream.worker_args(), "--records", str(records.path), "--delay", "0.002"]
    log = tmp_path / "worker.log"
    survivor = await Worker(args, log).start()
    victim = await Worker(args, log).start()
    emitter = stream.emitter()
    kill_points = sorted(rng.sample(range(EVENTS // 10, EVENTS * 8 // 10), KILLS))
    try:
        async with emitter:
            emitting = asyncio.create_task(
                emitter.emit_many(ticks(stream.topic, range(EVENTS)), timeout=60)
            )
            for point in kill_points:
                await wait_for_records(records, point, 90, survivor)
                await victim.kill()
                victim = await Worker(args, log).start()
            await emitting
        await wait_for_records(records, EVENTS, 120, survivor)
        catch_up = await wait_caught_up(stream, 120, [survivor, victim], records)
        for worker in (survivor, victim):
            assert await stop_gracefully(records, worker) == 0, worker.log_tail()
    finally:
        await survivor.kill()
        await victim.kill()
    missing = {tick_id(seq) for seq in range(EVENTS)} - set(records.done)
    assert not missing, f"{len(missing)} events lost, e.g. {sorted(missing)[:5]}"
    assert await stream.unsettled() == 0
    report(
        f"{backend}: 2 members, one SIGKILLed {KILLS} times: lost 0, "
        f"duplicates {records.duplicates}; at every id recorded: {catch_up}"
    )
