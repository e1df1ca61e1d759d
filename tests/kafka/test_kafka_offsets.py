"""The commit bookkeeping, without a broker: commits never pass an unsettled offset."""

from __future__ import annotations

import asyncio

from dispytch.kafka._commit import OffsetCommitter, rebalance_limit
from dispytch.kafka._offsets import CommitTracker, PartitionOffsets


def hand_out(offsets: PartitionOffsets, *numbers: int) -> None:
    for number in numbers:
        assert offsets.hand_out(number)


def test_nothing_to_commit_before_any_record() -> None:
    offsets = PartitionOffsets("t", 0)
    assert offsets.commit_offset() is None
    assert offsets.pending_commit() is None


def test_out_of_order_settlement_commits_only_below_the_first_unsettled() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 10, 11, 12, 13)
    assert offsets.settle(12)
    assert offsets.settle(13)
    assert offsets.commit_offset() == 10
    assert offsets.settle(10)
    assert offsets.commit_offset() == 11
    assert offsets.settle(11)
    assert offsets.commit_offset() == 14


def test_gaps_in_offsets_do_not_block_commits() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 3, 5, 9)  # 4, 6-8: transaction markers or compacted away
    for number in (9, 3, 5):
        offsets.settle(number)
    assert offsets.commit_offset() == 10


def test_settling_twice_or_unknown_offsets_changes_nothing() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 1, 2)
    assert offsets.settle(2)
    assert not offsets.settle(2)
    assert not offsets.settle(7)
    assert offsets.commit_offset() == 1


def test_nack_holds_the_commit_until_the_record_comes_again() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 0, 1, 2, 3)
    offsets.settle(0)
    assert offsets.nack(1) == 1
    offsets.settle(2)
    assert offsets.nack(3) == 1  # seek to the lowest nacked offset
    assert offsets.commit_offset() == 1
    # read again from 1: nacked ones come back, settled 2 is skipped
    assert offsets.hand_out(1)
    assert not offsets.hand_out(2)
    assert offsets.hand_out(3)
    assert offsets.hand_out(4)
    for number in (1, 3, 4):
        offsets.settle(number)
    assert offsets.commit_offset() == 5


def test_a_record_still_running_is_not_handed_out_twice_after_a_seek() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 0, 1)
    offsets.nack(0)
    assert offsets.hand_out(0)
    assert not offsets.hand_out(1)  # still in flight from the first read
    assert offsets.in_flight == {0, 1}


def test_pending_commit_only_when_the_offset_moved() -> None:
    tracker = CommitTracker()
    first = tracker.partition("t", 0)
    second = tracker.partition("t", 1)
    hand_out(first, 0, 1)
    hand_out(second, 7)
    first.settle(1)
    second.settle(7)
    assert tracker.pending_commits() == {("t", 0): 0, ("t", 1): 8}
    tracker.mark_committed({("t", 0): 0, ("t", 1): 8})
    assert tracker.pending_commits() == {}
    first.settle(0)
    assert tracker.pending_commits() == {("t", 0): 2}
    assert tracker.pending_commits([("t", 1)]) == {}


def test_forgotten_partitions_ignore_late_settlements() -> None:
    tracker = CommitTracker()
    offsets = tracker.partition("t", 0)
    hand_out(offsets, 0)
    tracker.forget([("t", 0)])
    assert not offsets.settle(0)
    assert offsets.nack(0) is None
    assert tracker.get("t", 0) is None
    assert tracker.partition("t", 0) is not offsets  # a new assignment starts afresh


class Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def records(*numbers: int) -> list[Record]:
    return [Record(number) for number in numbers]


def test_a_nacked_offset_compacted_away_is_forgotten_when_read_past() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 4, 5, 6, 7)
    for number in (4, 6, 7):
        offsets.settle(number)
    assert offsets.nack(5) == 5
    offsets.sought(5)
    # read again from 5: compaction removed it, the log goes on at 6
    assert offsets.forget_missing(records(6, 7, 8), end=8) == [5]
    assert offsets.redeliver == set()
    assert offsets.read_from is None
    assert offsets.commit_offset() == 8


def test_only_missing_nacked_offsets_in_the_range_read_are_forgotten() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 1, 2, 3, 4, 5)
    offsets.settle(1)
    offsets.settle(4)
    for number in (2, 3, 5):
        offsets.nack(number)
    offsets.sought(2)
    # a fetch of 2 and 4 (3 compacted away), ending before 5
    assert offsets.forget_missing(records(2, 4), end=4) == [3]
    assert offsets.redeliver == {2, 5}
    assert offsets.read_from == 5
    assert offsets.waits_below(5, records(2, 4)) is False
    assert offsets.waits_below(6, records(2, 4)) is True  # 5 is to be read again


def test_nothing_is_forgotten_without_a_seek_back() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 0, 1)
    offsets.nack(0)  # a delayed nack: the seek has not happened yet
    assert offsets.forget_missing(records(5, 6), end=6) == []
    assert offsets.redeliver == {0}


def test_nacked_offsets_below_the_log_start_are_forgotten() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 0, 1, 2)
    offsets.nack(0)
    offsets.nack(2)
    offsets.settle(1)
    offsets.sought(0)
    assert offsets.forget_before(1) == [0]
    assert offsets.redeliver == {2}
    assert offsets.forget_before(3) == [2]
    assert offsets.read_from is None
    assert offsets.commit_offset() == 3


def test_a_member_may_hold_a_rebalance_for_most_of_its_rebalance_timeout() -> None:
    assert rebalance_limit({}) == 8.0  # aiokafka: session_timeout_ms, 10 s by default
    assert rebalance_limit({"session_timeout_ms": 30_000}) == 24.0
    assert rebalance_limit({"session_timeout_ms": 30_000, "rebalance_timeout_ms": 5_000}) == 4.0
    assert rebalance_limit(None) is None  # a wrapped client: its settings are unknown


async def test_a_revocation_waits_for_a_drain_within_the_rebalance_limit() -> None:
    offsets = PartitionOffsets("t", 0)
    hand_out(offsets, 1)  # running, never settled
    loop = asyncio.get_running_loop()
    committer = OffsetCommitter(CommitTracker(), interval=60, every=None)

    async def waited(timeout: float) -> float:
        began = loop.time()
        await committer.wait_settled([offsets], timeout)
        return loop.time() - began

    assert await waited(0.05) < 1  # not draining: revoke_timeout only
    committer.draining(grace=30, rebalance_limit=0.3)
    assert 0.25 <= await waited(0.05) < 5  # draining: up to the limit, not the grace
    committer.draining(grace=0.2, rebalance_limit=10)
    assert 0.15 <= await waited(0.05) < 5  # or the end of the drain, if sooner
    committer.draining(grace=30, rebalance_limit=10)
    waiting = asyncio.ensure_future(waited(0.05))
    await asyncio.sleep(0.2)
    await committer.stop()  # close(): the drain is over
    assert await asyncio.wait_for(waiting, 5) < 5
