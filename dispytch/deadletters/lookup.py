"""`find_letter`: the letters a user's reference names (an event id, a unique prefix of one,
or an index), as `dispytch dlq show` takes it."""

from __future__ import annotations

from collections.abc import Sequence

from dispytch.deadletters.errors import DeadLetterError
from dispytch.deadletters.letter import DeadLetter

#: what a table cell or the docs may end a shortened id with
_ELLIPSES = ("…", "...")
#: how many matching ids an ambiguity error names
_SHOWN_MATCHES = 5


class AmbiguousLetterError(DeadLetterError):
    """A prefix matches the event ids of several letters."""


def find_letters(letters: Sequence[DeadLetter], reference: str) -> list[DeadLetter]:
    """The letters `reference` names: those whose event id is `reference`; else, when it is a
    number, the letter with that index; else those whose event id starts with it (a trailing
    `…` or `...`, as a shortened id is shown, is ignored). Several letters may share one event
    id (a redelivered event dead-lettered twice): all are returned. A prefix that matches
    letters with different event ids raises `AmbiguousLetterError` naming them."""
    exact = [letter for letter in letters if letter.event_id == reference]
    if exact:
        return exact
    if reference.isdigit():
        by_index = [letter for letter in letters if letter.index == int(reference)]
        if by_index:
            return by_index
    prefix = reference
    for ellipsis in _ELLIPSES:
        prefix = prefix.removesuffix(ellipsis)
    if not prefix:
        return []
    matching = [
        letter for letter in letters if letter.event_id and letter.event_id.startswith(prefix)
    ]
    ids = sorted({letter.event_id for letter in matching if letter.event_id})
    if len(ids) > 1:
        shown = ", ".join(ids[:_SHOWN_MATCHES]) + (", ..." if len(ids) > _SHOWN_MATCHES else "")
        raise AmbiguousLetterError(
            f"{prefix!r} is the start of {len(ids)} event ids ({shown}): give more letters"
        )
    return matching
