"""The replay progress of a Kafka dead-letter partition: committed offset plus gaps."""

from __future__ import annotations

from dispytch.kafka._replay_progress import PartitionProgress, format_ranges, parse_ranges


def test_ranges_round_trip() -> None:
    offsets = {3, 4, 5, 9, 12, 13}
    assert format_ranges(offsets) == "v1:3-5,9,12-13"
    assert parse_ranges(format_ranges(offsets)) == offsets
    assert parse_ranges("something else") == set()
    assert parse_ranges(None) == set()


def test_a_filtered_replay_keeps_the_commit_before_the_first_letter_left_behind() -> None:
    progress = PartitionProgress.parse(None, None, beginning=0)
    for offset in range(4):
        progress.seen(offset)
    progress.mark_replayed(1)
    progress.mark_replayed(3)
    commit = progress.pending_commit()
    assert commit == (0, "v1:1,3")
    progress.committed_as(*commit)

    again = PartitionProgress.parse(*commit, beginning=0)
    assert [o for o in range(4) if not again.is_replayed(o)] == [0, 2]
    for offset in range(4):
        again.seen(offset)
    again.mark_replayed(0)
    again.mark_replayed(2)
    assert again.pending_commit() == (4, "v1:")
    assert PartitionProgress.parse(4, "v1:", beginning=0).is_replayed(3)


def test_nothing_to_commit_without_a_replay_and_the_metadata_stays_bounded() -> None:
    progress = PartitionProgress.parse(-1, None, beginning=5)
    assert progress.committed == 5
    progress.seen(5)
    assert progress.pending_commit() is None
    gaps = 0
    offset = 6
    while progress.fits_one_more(offset):
        progress.mark_replayed(offset)
        gaps += 1
        offset += 2
    assert gaps > 100
    commit = progress.pending_commit()
    assert commit is not None
    assert len(commit[1]) <= 4000
