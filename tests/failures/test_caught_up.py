"""The end condition of the kill scenarios: "every id recorded" is not "caught up".

A worker records every event and is SIGKILLed before it settles any of them (its handlers
linger after recording). Every id is in the records, yet the broker still has all of them for
the group: a graceful stop of the next worker at that point would leave them unsettled (issue
19). `wait_caught_up` waits, within its bound, until the next worker has handled and settled
them again; a graceful stop then leaves nothing unsettled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .caught_up import wait_caught_up
from .events import ticks
from .processes import Records, Worker, stop_gracefully, wait_for_records

EVENTS = 100


@pytest.mark.parametrize("backend", ["kafka", "rabbitmq", "redis", "nats"])
async def test_every_id_recorded_is_not_yet_caught_up(
    backend: str, streams: Any, tmp_path: Path, report: Any
) -> None:
    stream = await streams(backend, partitions=2)
    async with stream.emitter() as emitter:
        await emitter.emit_many(ticks(stream.topic, range(EVENTS), keys=0))
    records = Records(tmp_path / "handled.log")
    args = [*stream.worker_args(), "--records", str(records.path), "--max-concurrency", "100"]
    log = tmp_path / "worker.log"
    worker = await Worker([*args, "--linger", "120"], log).start()
    try:
        await wait_for_records(records, EVENTS, 60, worker)
        await worker.kill()
        assert records.refresh().unique == EVENTS  # the old end condition holds...
        assert await stream.outstanding() == EVENTS  # ...but nothing was settled
        with pytest.raises(AssertionError, match="did not catch up"):
            await wait_caught_up(stream, 1.0)

        worker = await Worker(args, log).start()
        catch_up = await wait_caught_up(stream, 120, [worker], records)
        # caught up: the next worker has handled every event once more
        assert set(records.refresh().done.values()) == {2}, records.done.most_common(3)
        assert await stop_gracefully(records, worker) == 0, worker.log_tail()
    finally:
        await worker.kill()
    assert await stream.unsettled() == 0
    report(f"{backend}: every id recorded by a killed worker, {catch_up}")
