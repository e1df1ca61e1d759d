"""RabbitMQ cluster failover: the node holding a quorum queue's leader SIGKILLed mid-stream.

On the three-node cluster of scripts/brokers (rabbitmq-cluster). The group queue is a quorum
queue (`queue_arguments={"x-queue-type": "quorum"}`) led by node 1. A worker process
(tests.failures.worker) consumes it with the URL list node 1, 2, 3 (so it is connected to the
leader), while this test emits ticks one by one with publisher confirms through node 2. Node 1
is killed with SIGKILL. Checked: every emit the broker confirmed is handled, by the same worker
process (it reconnected to another node by itself); duplicates (deliveries unacknowledged
when the node died come again) are counted and reported; the killed node comes back and is
a member of the queue again; the queue empties, and a graceful stop leaves nothing unsettled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.failures.caught_up import wait_caught_up
from tests.failures.processes import Records, Worker, stop_gracefully, wait_for_records, wait_ready
from tests.failures.waiting import wait_until

from .emitting import EmitLoop
from .nodes import ClusterControl
from .rabbitmq_cluster import ClusterRabbitMQStream, node_name, wait_queue

pytestmark = pytest.mark.cluster

EVENTS = 2000
WAIT = 120.0


async def test_quorum_queue_leader_killed_mid_stream(
    rabbitmq_cluster: ClusterControl, tmp_path: Path, report: Callable[[str], None]
) -> None:
    stream = ClusterRabbitMQStream()
    await stream.prepare(1)
    worker: Worker | None = None
    emitting: asyncio.Task[None] | None = None
    try:
        state = await stream.queue_state(ask=2)
        assert state.leader == node_name(1), state
        records = Records(tmp_path / "handled.log")
        args = [*stream.worker_args(), "--records", str(records.path)]
        worker = await Worker(args, tmp_path / "worker.log", env=stream.worker_env()).start()
        emits = EmitLoop(stream)
        emitting = asyncio.create_task(emits.run(EVENTS))
        await wait_ready(records, worker)
        await wait_for_records(records, EVENTS // 5, WAIT, worker)
        assert not emitting.done(), "the stream ended before the kill: emit more events"
        await rabbitmq_cluster.kill(1)
        confirmed_at_kill = len(emits.confirmed)
        handled_at_kill = records.refresh().unique
        new = await wait_queue(
            stream, 2, lambda s: s.leader not in ("", node_name(1)), WAIT, "a new leader"
        )
        await asyncio.wait_for(emitting, WAIT * 2)
        assert len(emits.confirmed) > confirmed_at_kill, "nothing confirmed after the kill"
        confirmed = set(emits.confirmed)
        live = worker
        await wait_until(
            lambda: not live.alive or confirmed <= set(records.refresh().done),
            WAIT,
            f"every confirmed emit handled ({len(confirmed)})",
        )
        assert worker.alive, f"the worker died after the kill\n{worker.log_tail()}"

        await rabbitmq_cluster.start(1)
        await wait_queue(stream, 2, lambda s: s.online == 3, WAIT, "node 1 a member again")
        catch_up = await wait_caught_up(stream, WAIT, [worker], records)
        status = await stop_gracefully(records, worker)
        assert status == 0, worker.log_tail()
        assert await stream.outstanding() == 0
    finally:
        if emitting is not None:
            emitting.cancel()
            await asyncio.gather(emitting, return_exceptions=True)
        if worker is not None:
            await worker.kill()
        await stream.cleanup()
    records.refresh()
    lost = confirmed - set(records.done)
    assert not lost, f"{len(lost)} confirmed emits never handled, e.g. {sorted(lost)[:5]}"
    report(
        f"node 1 (quorum queue leader) SIGKILLed after {handled_at_kill} handled, new leader "
        f"{new.leader}: {emits}; {records.unique} handled, {records.duplicates} duplicates; "
        f"after its restart: {catch_up}"
    )
    assert not emits.failed, f"emits raised during failover: {list(emits.failed.items())[:3]}"
