"""Which offsets of a partition may be committed: pure bookkeeping, no I/O.

Kafka commits one number per partition: "everything before this offset is done". The listener
settles deliveries out of order (they run concurrently), so the commit offset of a partition is
the lowest offset handed out and not settled yet; when everything handed out is settled, it is
one past the highest offset handed out. Offsets are not contiguous (transaction markers and
compaction leave gaps), so the bookkeeping is about offsets handed out, never about offset + 1.

A nacked offset stays unsettled ("to redeliver") until the partition is read again from it, so
the commit never passes it. Records read again after such a seek that were already handed out
(settled or still running) are skipped; only the nacked ones are handed out again. A nacked
offset that no longer exists when it is read again (retention, deleteRecords, compaction) is
forgotten: the records read from the seek on show it is missing (see `_redelivery`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

PartitionKey = tuple[str, int]


@dataclass(slots=True, eq=False)
class PartitionOffsets:
    """The offsets of one assigned partition, for one assignment (a new one starts afresh)."""

    topic: str
    partition: int
    #: handed out, not settled yet
    in_flight: set[int] = field(default_factory=set)
    #: nacked: must be read and handed out again
    redeliver: set[int] = field(default_factory=set)
    #: the highest offset handed out so far (-1: none)
    high: int = -1
    #: the last offset committed by us (None: nothing committed in this assignment)
    committed: int | None = None
    #: the partition was revoked or the consumer closed: settling does nothing any more
    revoked: bool = False
    #: after a seek back to a nacked offset: where the records read next begin (None: no
    #: re-read under way)
    read_from: int | None = None

    def hand_out(self, offset: int) -> bool:
        """Note a fetched record. False when it must be skipped (read again after a seek,
        but already handed out and not nacked)."""
        if offset > self.high:
            self.high = offset
            self.in_flight.add(offset)
            return True
        if offset in self.redeliver:
            self.redeliver.discard(offset)
            self.in_flight.add(offset)
            return True
        return False

    def hand_out_many(self, records: list[Any]) -> list[Any]:
        """`hand_out` for the records of one fetch of this partition (in offset order): the
        ones to hand out."""
        if records[0].offset > self.high:  # the usual case: all of them are new
            self.in_flight.update([record.offset for record in records])
            self.high = records[-1].offset
            return records
        return [record for record in records if self.hand_out(record.offset)]

    def settle(self, offset: int) -> bool:
        """The delivery at `offset` is done. False when it was not in flight."""
        if self.revoked or offset not in self.in_flight:
            return False
        self.in_flight.discard(offset)
        return True

    def nack(self, offset: int) -> int | None:
        """The delivery at `offset` must come again. Returns where to seek the partition to
        (the lowest offset waiting for redelivery), or None when nothing is to be done."""
        if self.revoked or offset not in self.in_flight:
            return None
        self.in_flight.discard(offset)
        self.redeliver.add(offset)
        return min(self.redeliver)

    def sought(self, offset: int) -> None:
        """The partition is read again from `offset` (the lowest nacked offset)."""
        self.read_from = offset

    def forget_missing(self, records: list[Any], end: int) -> list[int]:
        """`records` were read one after another from `read_from` up to offset `end`: nacked
        offsets in that range that are not among them no longer exist. Forget them and return
        them (sorted)."""
        start = self.read_from
        if start is None:
            return []
        present = {record.offset for record in records}
        gone = sorted(o for o in self.redeliver if start <= o <= end and o not in present)
        self.redeliver.difference_update(gone)
        self.read_from = end + 1 if self.redeliver else None
        return gone

    def forget_before(self, log_start: int) -> list[int]:
        """The partition's log now begins at `log_start`: nacked offsets before it are gone."""
        gone = sorted(o for o in self.redeliver if o < log_start)
        self.redeliver.difference_update(gone)
        if not self.redeliver:
            self.read_from = None
        return gone

    def waits_below(self, offset: int, records: list[Any]) -> bool:
        """A nacked offset below `offset` waits to be read again, and is not among `records`."""
        present = {record.offset for record in records}
        return any(o < offset and o not in present for o in self.redeliver)

    @property
    def unsettled(self) -> int:
        return len(self.in_flight) + len(self.redeliver)

    def commit_offset(self) -> int | None:
        """The offset to commit: the first one not settled yet (None before any record)."""
        lowest = [min(offsets) for offsets in (self.in_flight, self.redeliver) if offsets]
        if lowest:
            return min(lowest)
        if self.high < 0:
            return None
        return self.high + 1

    def pending_commit(self) -> int | None:
        """The commit offset when it moved past the last commit, else None."""
        offset = self.commit_offset()
        if offset is None or (self.committed is not None and offset <= self.committed):
            return None
        return offset


class CommitTracker:
    """The `PartitionOffsets` of every partition a consumer currently reads."""

    __slots__ = ("_partitions",)

    def __init__(self) -> None:
        self._partitions: dict[PartitionKey, PartitionOffsets] = {}

    def partition(self, topic: str, partition: int) -> PartitionOffsets:
        key = (topic, partition)
        offsets = self._partitions.get(key)
        if offsets is None:
            offsets = self._partitions[key] = PartitionOffsets(topic, partition)
        return offsets

    def get(self, topic: str, partition: int) -> PartitionOffsets | None:
        return self._partitions.get((topic, partition))

    def __iter__(self) -> Iterator[PartitionOffsets]:
        return iter(list(self._partitions.values()))

    def pending_commits(
        self, keys: Iterable[PartitionKey] | None = None
    ) -> dict[PartitionKey, int]:
        """Commit offsets that moved since the last commit, for `keys` (default: all)."""
        if keys is None:
            selected: Iterable[PartitionOffsets] = self._partitions.values()
        else:
            selected = [p for key in keys if (p := self._partitions.get(key)) is not None]
        pending: dict[PartitionKey, int] = {}
        for offsets in selected:
            offset = offsets.pending_commit()
            if offset is not None:
                pending[(offsets.topic, offsets.partition)] = offset
        return pending

    def mark_committed(self, committed: dict[PartitionKey, int]) -> None:
        for key, offset in committed.items():
            offsets = self._partitions.get(key)
            if offsets is not None and (offsets.committed is None or offset > offsets.committed):
                offsets.committed = offset

    def forget(self, keys: Iterable[PartitionKey] | None = None) -> list[PartitionOffsets]:
        """Drop partitions (default: all): their late settlements do nothing from now on."""
        if keys is None:
            keys = list(self._partitions)
        dropped = []
        for key in keys:
            offsets = self._partitions.pop(key, None)
            if offsets is not None:
                offsets.revoked = True
                dropped.append(offsets)
        return dropped
