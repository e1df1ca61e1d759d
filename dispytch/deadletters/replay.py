"""Select dead letters from a store and replay them (or say what a replay would do)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from dispytch.deadletters.errors import NotReplayableError
from dispytch.deadletters.filters import EVERYTHING, LetterFilter
from dispytch.deadletters.letter import DeadLetter
from dispytch.deadletters.store import DeadLetterStore


@dataclass(slots=True)
class ReplayReport:
    dry_run: bool
    #: letters read from the store
    scanned: int = 0
    #: the letters the filter selected (within the limit), in store order
    selected: list[DeadLetter] = field(default_factory=list)
    #: replayed and removed (in a dry run: nothing)
    replayed: list[DeadLetter] = field(default_factory=list)
    #: selected but not replayed, with the reason
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)
    #: why the replay stopped before the end, if it did (the broker went away, ...)
    aborted: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and self.aborted is None


async def select_letters(
    store: DeadLetterStore,
    selection: LetterFilter = EVERYTHING,
    *,
    limit: int | None = None,
    include_replayed: bool = False,
) -> list[DeadLetter]:
    """The letters `selection` picks, at most `limit`. Changes nothing in the store."""
    chosen: list[DeadLetter] = []
    if limit is not None and limit <= 0:
        return chosen
    async with aclosing(store.read(include_replayed=include_replayed)) as letters:
        async for letter in letters:
            if selection(letter):
                chosen.append(letter)
                if limit is not None and len(chosen) >= limit:
                    break
    return chosen


async def replay_letters(
    store: DeadLetterStore,
    selection: LetterFilter = EVERYTHING,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    on_scanned: Callable[[DeadLetter], None] | None = None,
) -> ReplayReport:
    """Replay every letter `selection` picks (at most `limit`), oldest first.

    A letter that cannot be replayed (`NotReplayableError`: no original topic, unroutable, ...)
    is reported in `failed` and the others go on; any other error (the broker went away)
    stops the replay, reported in `aborted`. Letters not replayed stay in the store.
    `on_scanned` is called for every letter read (drives progress bars).
    """
    report = ReplayReport(dry_run=dry_run)
    if limit is not None and limit <= 0:
        return report
    async with aclosing(store.read()) as letters:
        async for letter in letters:
            report.scanned += 1
            if selection(letter):
                report.selected.append(letter)
                if not dry_run:
                    try:
                        await store.replay(letter)
                    except NotReplayableError as error:
                        report.failed.append((letter, str(error)))
                    except Exception as error:  # reported, and stops: the cause is not the letter
                        report.failed.append((letter, f"{type(error).__name__}: {error}"))
                        report.aborted = f"{type(error).__name__}: {error}"
                    else:
                        report.replayed.append(letter)
            if on_scanned is not None:
                on_scanned(letter)
            if report.aborted is not None:
                break
            if limit is not None and len(report.selected) >= limit:
                break
    return report
