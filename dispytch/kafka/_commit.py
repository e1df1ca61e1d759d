"""Committing settled offsets: a background task, batched by time (and by count, if asked).

Offsets are committed every `interval` seconds (or after `every` settlements, when given,
whichever comes first), and only up to the first offset of each partition that is not settled
yet (see `_offsets`). A failed commit is logged and retried on the next round.

Time only is the default: the replay window after a crash is then bounded in time (what was
handled in the last `interval` seconds), and the number of commits does not grow with the
throughput (a count of 1000 meant a commit round trip every 10 ms at 100,000 events/s). Either
way at-least-once holds: a commit never passes an offset that is not settled.

Settling an offset (`KafkaDelivery.ack`) removes it from its partition's in-flight set and
calls `notify` only when someone needs to know: a count is kept, or a rebalance waits for the
partitions it revokes to settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from dispytch.kafka._errors import KAFKA_EXCEPTIONS
from dispytch.kafka._offsets import CommitTracker, PartitionKey, PartitionOffsets

log = logging.getLogger("dispytch.kafka")

COMMIT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    *KAFKA_EXCEPTIONS,
    kafka_errors.IllegalOperation,
)


class OffsetCommitter:
    def __init__(self, tracker: CommitTracker, interval: float, every: int | None) -> None:
        self.tracker = tracker
        #: called on every settlement when not None (see the module docstring)
        self.notify: Callable[[], None] | None = None
        #: False for a client without a group: nothing can be committed
        self.enabled = True
        self._interval = interval
        self._every = every
        self._client: AIOKafkaConsumer | None = None
        self._wanted = asyncio.Event()
        #: set whenever a delivery is settled or nacked (rebalances wait on it)
        self._settled = asyncio.Event()
        self._since_commit = 0
        self._waiters = 0
        #: loop time until which the listener may still be draining (see `draining`)
        self._drained_by: float | None = None
        #: seconds this member may hold a rebalance while it drains (see `draining`)
        self._rebalance_limit: float | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._arm()

    def start(self, client: AIOKafkaConsumer) -> None:
        self._client = client
        self._task = asyncio.create_task(self._loop(), name="dispytch-kafka-commit")

    def draining(self, grace: float | None, rebalance_limit: float | None) -> None:
        """The consumer stopped fetching; its listener lets running events finish for up to
        `grace` seconds (None: not said). Until then, or until `stop()`, a rebalance waits for
        the running events of the partitions it revokes as long as the drain may last, not only
        `revoke_timeout`: what the drain finishes is then committed, not handled again by the
        partition's next owner. (Two members stopping together: the first to leave makes the
        other give its partitions up in the middle of its drain.) `rebalance_limit`: how long
        this member may hold a rebalance before the broker drops it from the group, which would
        make the commit fail anyway (see `rebalance_limit`; None: unknown, no longer wait)."""
        if grace is not None:
            self._drained_by = asyncio.get_running_loop().time() + grace
        self._rebalance_limit = rebalance_limit

    async def stop(self) -> None:
        # the drain is over: a rebalance waiting past its revoke_timeout for it goes on now
        self._drained_by = None
        self._settled.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def nacked(self) -> None:
        self._settled.set()

    async def wait_settled(self, partitions: Sequence[PartitionOffsets], timeout: float) -> None:
        """Wait up to `timeout` seconds until nothing of `partitions` is in flight; while the
        listener drains, as long as the drain may last (see `draining`)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        given = began + timeout
        self._waiters += 1
        self._arm()
        try:
            while any(p.in_flight for p in partitions):
                deadline = given
                if self._drained_by is not None and self._rebalance_limit is not None:
                    deadline = max(given, min(self._drained_by, began + self._rebalance_limit))
                if loop.time() >= deadline:
                    return
                self._settled.clear()
                try:
                    await asyncio.wait_for(self._settled.wait(), deadline - loop.time())
                except asyncio.TimeoutError:
                    return
        finally:
            self._waiters -= 1
            self._arm()

    def _arm(self) -> None:
        wanted = self._every is not None or self._waiters > 0
        self.notify = self._settled_one if wanted else None

    def _settled_one(self) -> None:
        if self._waiters:
            self._settled.set()
        every = self._every
        if every is not None:
            self._since_commit += 1
            if self._since_commit >= every:
                self._wanted.set()

    async def commit(self, keys: Iterable[PartitionKey] | None = None) -> None:
        """Commit, for `keys` (default: every partition), what is settled without a gap."""
        client = self._client
        if client is None or not self.enabled:
            return
        async with self._lock:
            pending = self.tracker.pending_commits(keys)
            if not pending:
                return
            assigned = client.assignment()
            offsets = {}
            for (topic, partition), offset in list(pending.items()):
                tp = TopicPartition(topic, partition)
                if tp in assigned:
                    offsets[tp] = offset
                else:
                    del pending[(topic, partition)]
            if not offsets:
                return
            self._since_commit = 0
            try:
                await client.commit(offsets)
            except COMMIT_EXCEPTIONS as exc:
                log.warning("committing Kafka offsets failed (retried later): %r", exc)
                return
            self.tracker.mark_committed(pending)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), self._interval)
            self._wanted.clear()
            await self.commit()


def rebalance_limit(create_options: Mapping[str, Any] | None) -> float | None:
    """Seconds a member may take to rejoin a rebalance, with a margin for its commit: 80 % of
    the client's rebalance timeout (aiokafka: `rebalance_timeout_ms`, else
    `session_timeout_ms`, else 10 s). None for a client the caller made: its settings are its
    own, and waiting past them would only make the member's commit fail."""
    if create_options is None:
        return None
    timeout_ms = create_options.get("rebalance_timeout_ms") or create_options.get(
        "session_timeout_ms", 10_000
    )
    return 0.8 * float(timeout_ms) / 1000
