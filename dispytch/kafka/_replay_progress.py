"""Which records of a Kafka dead-letter partition were replayed: pure bookkeeping, no I/O.

A dead-letter topic is append-only, so a replay cannot remove what it replayed. It records
progress as the committed offset of a consumer group (`dispytch-dlq-replay` by default) on the
dead-letter topic: every record before the committed offset was replayed. A filtered replay
leaves gaps (letters it did not select), so the offsets past the committed one that were
replayed travel in the commit's metadata string, as ranges: `v1:14-20,23,31-40`.

Kafka limits that metadata (`offset.metadata.max.bytes`, 4096 by default), so the number of
separate ranges is bounded; `fits_one_more()` says whether one more replayed offset still fits.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

METADATA_PREFIX = "v1:"
MAX_METADATA_CHARS = 4000


@dataclass(slots=True)
class PartitionProgress:
    #: every record before this offset was replayed
    committed: int = 0
    #: offsets at or after `committed` that were replayed
    replayed: set[int] = field(default_factory=set)
    #: records read in this session and not replayed when last looked at, in offset order
    _open: deque[int] = field(default_factory=deque)
    _last_seen: int | None = None
    _dirty: bool = False
    #: how many separate ranges `replayed` holds (kept up to date: counting is O(n))
    _ranges: int = -1

    def __post_init__(self) -> None:
        self._ranges = _count_ranges(self.replayed)

    @classmethod
    def parse(
        cls, committed: int | None, metadata: str | None, beginning: int
    ) -> PartitionProgress:
        """From a committed offset (None or -1: nothing committed) and its metadata."""
        start = beginning if committed is None or committed < 0 else max(committed, beginning)
        return cls(committed=start, replayed={o for o in parse_ranges(metadata) if o >= start})

    def is_replayed(self, offset: int) -> bool:
        return offset < self.committed or offset in self.replayed

    def seen(self, offset: int) -> None:
        """A record at `offset` was read (records are read in offset order)."""
        self._last_seen = offset
        if not self.is_replayed(offset):
            self._open.append(offset)

    def fits_one_more(self, offset: int) -> bool:
        """Whether the metadata still fits with `offset` marked replayed (an upper bound:
        every range counted as two numbers as long as `offset`)."""
        ranges = self._ranges + self._range_delta(offset)
        return ranges * (2 * len(str(offset)) + 2) + len(METADATA_PREFIX) <= MAX_METADATA_CHARS

    def mark_replayed(self, offset: int) -> None:
        self._ranges += self._range_delta(offset)
        self.replayed.add(offset)
        self._dirty = True

    def _range_delta(self, offset: int) -> int:
        if offset in self.replayed:
            return 0
        return 1 - (offset - 1 in self.replayed) - (offset + 1 in self.replayed)

    def pending_commit(self) -> tuple[int, str] | None:
        """The (offset, metadata) to commit when something changed since the last commit."""
        if not self._dirty:
            return None
        while self._open and self._open[0] in self.replayed:
            self._open.popleft()
        if self._open:
            committed = max(self.committed, self._open[0])
        elif self._last_seen is not None:
            committed = max(self.committed, self._last_seen + 1)
        else:
            committed = self.committed
        replayed = {o for o in self.replayed if o >= committed}
        return committed, format_ranges(replayed)

    def committed_as(self, offset: int, metadata: str) -> None:
        """The commit of `pending_commit()` went through."""
        self.committed = offset
        self.replayed = {o for o in self.replayed if o >= offset}
        self._ranges = _count_ranges(self.replayed)
        self._dirty = False


def _count_ranges(offsets: set[int]) -> int:
    return sum(1 for o in offsets if o - 1 not in offsets)


def format_ranges(offsets: set[int]) -> str:
    parts: list[str] = []
    ordered = sorted(offsets)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return METADATA_PREFIX + ",".join(parts)


def parse_ranges(metadata: str | None) -> set[int]:
    """The offsets in a metadata string; anything that is not ours counts as none."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return set()
    offsets: set[int] = set()
    try:
        for part in metadata[len(METADATA_PREFIX) :].split(","):
            if not part:
                continue
            low, _, high = part.partition("-")
            offsets.update(range(int(low), int(high or low) + 1))
    except ValueError:
        return set()
    return offsets
