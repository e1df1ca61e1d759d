"""Fetching records from aiokafka into a buffer that `receive()` hands out from."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from dispytch.errors import ConsumerStoppedError
from dispytch.kafka._errors import KAFKA_EXCEPTIONS, connection_error
from dispytch.kafka._offsets import PartitionKey

#: aiokafka's ConsumerRecord (untyped)
Record: TypeAlias = Any
#: which of the records fetched from a partition may be buffered now; the flag is False when
#: the partition may have been sought elsewhere after these records were drawn
Admit = Callable[[TopicPartition, list[Record], bool], list[Record]]


class Chunk:
    """Records of one partition, fetched together, not all handed out yet."""

    __slots__ = ("partition", "records", "start", "topic")

    def __init__(self, tp: TopicPartition, records: list[Record]) -> None:
        self.topic: str = tp.topic
        self.partition: int = tp.partition
        self.records = records
        #: the index of the first record not handed out yet
        self.start = 0

    def take(self, count: int) -> list[Record]:
        """Up to `count` records, removed from the front."""
        start, records = self.start, self.records
        end = start + count
        if start == 0 and end >= len(records):
            self.start = len(records)
            return records
        self.start = min(end, len(records))
        return records[start:end]

    @property
    def empty(self) -> bool:
        return self.start >= len(self.records)


class RecordFetcher:
    """The fetch runs in its own task that outlives a cancelled `receive()`, and buffers what
    it drained from aiokafka in the same step (before anything else can run): a record drained
    and never handed out would be committed past.

    The task wakes the waiting `receive()` itself, through one future, once the records are
    buffered: one event-loop iteration from aiokafka's batch to the caller (`asyncio.wait` on
    the task, which also had to watch the stop signal, took two)."""

    def __init__(self, batch: int, admit: Admit | None = None) -> None:
        #: what was fetched and not handed out yet, one chunk per partition and fetch
        self.buffer: deque[Chunk] = deque()
        self._batch = batch
        self._admit = admit
        self._pending: asyncio.Task[None] | None = None
        #: the `fetch()` waiting for the pending fetch (woken by it, or by the stop signal)
        self._waiter: asyncio.Future[None] | None = None
        #: counts drops (seeks elsewhere), and the count at each partition's latest drop: a
        #: fetch that began before it may hold records from before the seek
        self._drops = 0
        self._dropped_at: dict[PartitionKey, int] = {}

    async def fetch(self, client: AIOKafkaConsumer, stopped: asyncio.Future[None]) -> None:
        """Wait for the next batch (or for `stopped`) and buffer it."""
        fetch = self._pending
        if fetch is None:
            fetch = self._pending = asyncio.ensure_future(self._fill(client))
        if not fetch.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()

            def on_stop(_: object) -> None:
                if not waiter.done():
                    waiter.set_result(None)

            stopped.add_done_callback(on_stop)
            try:
                await waiter
            finally:
                stopped.remove_done_callback(on_stop)
                self._waiter = None
            if not fetch.done():
                return  # stopped: receive() raises on its next turn
        self._pending = None
        try:
            fetch.result()
        except kafka_errors.ConsumerStoppedError as exc:
            raise ConsumerStoppedError("the Kafka client was stopped") from exc
        except KAFKA_EXCEPTIONS as exc:
            raise connection_error(exc, "fetching records") from exc

    async def _fill(self, client: AIOKafkaConsumer) -> None:
        """One `getmany`, buffered at once; then wake the waiting `fetch()`."""
        try:
            drops = self._drops  # before the fetch: a seek during it makes its records suspect
            batches = await client.getmany(timeout_ms=1000, max_records=self._batch)
            # buffered in the step that drew them: a rebalance cannot come in between (one
            # that came during the wait revoked the partitions before these were drawn)
            admit = self._admit
            dropped_at = self._dropped_at
            for tp, records in batches.items():
                if admit is not None:
                    fresh = dropped_at.get((tp.topic, tp.partition), 0) <= drops
                    records = admit(tp, records, fresh)
                if records:
                    self.buffer.append(Chunk(tp, records))
        finally:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def rebalanced(self, keys: set[PartitionKey]) -> None:
        self.drop(keys)

    def drop(self, keys: set[PartitionKey]) -> None:
        """Forget the buffered records of these partitions (they are read again)."""
        self._drops += 1
        for key in keys:
            self._dropped_at[key] = self._drops
        if self.buffer:
            self.buffer = deque(c for c in self.buffer if (c.topic, c.partition) not in keys)

    async def close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        self.buffer.clear()
