"""Reading a partition again from its nacked offsets, and what must not undo that.

`nack()` marks the offset for redelivery and seeks the partition back to the lowest nacked
offset (at once, or when the nack's delay is over). Two things used to defeat that seek and
freeze the partition's commit before the nacked offset until a rebalance:

- A hold on a retry partition (`_retry.RetryScheduler`). Records drawn before the seek can
  arrive after it; when one of them is not due, holding the partition there would move it past
  the nacked offset. So a hold is skipped while a nacked offset below it waits to be read
  again: the partition is read from the nacked offset and reaches the not-due record again.
- A nacked offset that no longer exists (retention, deleteRecords, compaction). Reading from it
  yields the next record that exists, or, below the log start, the reset position. The records
  read one after another from the seek on show which nacked offsets are missing; a check of the
  partition's beginning offset covers a log with nothing after them. Missing offsets are
  forgotten with a warning, and the consumer goes on from the next record that exists.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from dispytch.kafka._commit import OffsetCommitter
from dispytch.kafka._errors import KAFKA_EXCEPTIONS
from dispytch.kafka._fetch import RecordFetcher
from dispytch.kafka._offsets import CommitTracker, PartitionOffsets
from dispytch.kafka._retry import RetryScheduler

log = logging.getLogger("dispytch.kafka")

_SEEK_ERRORS = (kafka_errors.IllegalStateError, ValueError, AssertionError)
_LOOKUP_ERRORS: tuple[type[BaseException], ...] = (asyncio.TimeoutError, *KAFKA_EXCEPTIONS)
#: seconds the lookup of a partition's log start may take after a seek back
_LOG_START_TIMEOUT = 10.0


class RewindingConsumer(Protocol):
    """The parts of the consumer a rewinder works with (a protocol, so that this module does
    not import the consumer's)."""

    _client: AIOKafkaConsumer | None
    _closed: bool
    _committer: OffsetCommitter
    _fetcher: RecordFetcher
    _scheduler: RetryScheduler | None
    _tracker: CommitTracker


class Rewinder:
    """Seeks partitions back for nacked offsets, and admits fetched records accordingly."""

    def __init__(self, consumer: RewindingConsumer) -> None:
        self._consumer = consumer
        self._checks: set[asyncio.Task[None]] = set()

    def nack(self, offsets: PartitionOffsets, offset: int, delay: float | None) -> None:
        if offsets.nack(offset) is None:
            return
        self._consumer._committer.nacked()
        if delay:
            asyncio.get_running_loop().call_later(delay, self.seek_back, offsets)
        else:
            self.seek_back(offsets)

    def seek_back(self, offsets: PartitionOffsets) -> None:
        """Read the partition again from its lowest nacked offset."""
        consumer = self._consumer
        client = consumer._client
        if offsets.revoked or not offsets.redeliver or client is None or consumer._closed:
            return
        consumer._fetcher.drop({(offsets.topic, offsets.partition)})
        tp = TopicPartition(offsets.topic, offsets.partition)
        target = min(offsets.redeliver)
        try:
            client.seek(tp, target)
        except _SEEK_ERRORS as exc:
            # the partition went away: not committed past, so its next owner reads it again
            log.debug("cannot seek %s[%s] back: %s", offsets.topic, offsets.partition, exc)
            return
        offsets.sought(target)
        if consumer._scheduler is not None:
            consumer._scheduler.release(tp)  # a held retry partition reads the nacked record now
        check = asyncio.ensure_future(self._forget_below_log_start(client, tp, offsets))
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)

    def admit(self, tp: TopicPartition, records: list[Any], fresh: bool) -> list[Any]:
        """Of records just fetched from `tp`, the ones to buffer; holds the partition at the
        first one that is not due (a retry partition), unless that would undo a seek back.
        `fresh`: drawn after the partition's latest seek back."""
        consumer = self._consumer
        scheduler = consumer._scheduler
        not_due = None if scheduler is None else scheduler.first_not_due(tp, records)
        admitted = records if not_due is None else records[:not_due]
        offsets = consumer._tracker.get(tp.topic, tp.partition)
        if offsets is not None and offsets.redeliver:
            if fresh:
                end = records[-1].offset if not_due is None else records[not_due].offset - 1
                _report(offsets, offsets.forget_missing(admitted, end))
            if not_due is not None and offsets.waits_below(records[not_due].offset, admitted):
                return admitted  # the seek back to the nacked offset stands
        if not_due is not None:
            assert scheduler is not None
            scheduler.hold(tp, records[not_due])
        return admitted

    async def close(self) -> None:
        checks, self._checks = self._checks, set()
        for check in checks:
            check.cancel()
        await asyncio.gather(*checks, return_exceptions=True)

    async def _forget_below_log_start(
        self, client: AIOKafkaConsumer, tp: TopicPartition, offsets: PartitionOffsets
    ) -> None:
        try:
            starts = await asyncio.wait_for(client.beginning_offsets([tp]), _LOG_START_TIMEOUT)
        except _LOOKUP_ERRORS as exc:
            log.debug("cannot read the log start of %s[%s]: %r", tp.topic, tp.partition, exc)
            return
        start = starts.get(tp)
        if start is not None and not offsets.revoked:
            _report(offsets, offsets.forget_before(start))


def _report(offsets: PartitionOffsets, gone: list[int]) -> None:
    if gone:
        log.warning(
            "nacked record(s) at offset(s) %s of %s[%s] no longer exist (removed by retention, "
            "deleteRecords or compaction before they were read again); going on without them",
            gone,
            offsets.topic,
            offsets.partition,
        )
