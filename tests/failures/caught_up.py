"""Waiting until a consumer group has caught up with its stream: the end condition of the
failure scenarios in which events come back to a worker (after a kill, a rebalance, a broker
restart).

Caught up means the broker has nothing left for the group (`Stream.outstanding() == 0`):
- Kafka: the group's committed offsets reached the end offsets of every partition (the
  listener commits settled offsets every 0.5 s while it runs);
- RabbitMQ: the group's queue holds no message, neither ready nor delivered and unacknowledged;
- in memory: the group has no message pending (ready, delivered or waiting for its key).

Every event id in the records is not enough. A worker SIGKILLed after its handler recorded an
event but before the broker learned of the settlement leaves that event to the next worker,
which handles it again; until it has, the group is behind, although every id is recorded.
A graceful stop in the middle of that leaves the rest unsettled for the next run (documented
behaviour), so a test that stopped there and then asserted "nothing unsettled" failed now and
then (issue 19). A graceful stop of a caught-up worker leaves nothing unsettled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .processes import Records, Worker
from .streams import Stream

#: between two looks at the broker (a look itself takes a while: admin requests, rabbitmqctl)
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class CatchUp:
    #: what the group had outstanding when the wait began
    behind: int
    #: how long it took to catch up
    seconds: float
    #: handler runs the records got meanwhile (every id was recorded before: all of them
    #: handled an event again, and a stop at the start of the wait would have cut them off)
    handled_meanwhile: int = 0

    def __str__(self) -> str:
        if not self.behind:
            return "caught up at once"
        return (
            f"{self.behind} outstanding, caught up {self.seconds:.1f}s later, "
            f"{self.handled_meanwhile} handled meanwhile"
        )


async def wait_caught_up(
    stream: Stream,
    timeout: float,
    workers: Sequence[Worker] = (),
    records: Records | None = None,
) -> CatchUp:
    """Wait until the stream's group has nothing outstanding; fail after `timeout` seconds,
    or at once when one of `workers` (those consuming the stream) exits meanwhile. With the
    workers' `records`, the result says how many handler runs they recorded meanwhile."""
    runs_before = _runs(records)
    began = time.monotonic()
    behind = left = await stream.outstanding()
    while left:
        for worker in workers:
            if not worker.alive:
                raise AssertionError(
                    f"worker {worker.pid} exited while group {stream.group} had {left} "
                    f"messages outstanding\n{worker.log_tail()}"
                )
        if time.monotonic() - began > timeout:
            tails = "\n".join(worker.log_tail() for worker in workers)
            raise AssertionError(
                f"group {stream.group} did not catch up with {stream.backend} topic "
                f"{stream.topic} within {timeout}s: {left} messages outstanding "
                f"({behind} when the wait began)\n{tails}"
            )
        await asyncio.sleep(POLL_INTERVAL)
        left = await stream.outstanding()
    return CatchUp(behind, time.monotonic() - began, _runs(records) - runs_before)


def _runs(records: Records | None) -> int:
    return 0 if records is None else sum(records.refresh().done.values())
