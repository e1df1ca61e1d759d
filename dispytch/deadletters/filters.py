"""`LetterFilter`: which dead letters to list or replay."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dispytch.deadletters.letter import DeadLetter


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Selects dead letters. Every given criterion must hold; an empty set means "any".

    `error_contains` is a case-insensitive substring of the error message. `groups` holds
    consumer group names (or RabbitMQ queue names): a letter whose backend records no group
    matches no group.
    """

    event_types: frozenset[str] = frozenset()
    error_types: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()
    original_topics: frozenset[str] = frozenset()
    error_contains: str | None = None
    groups: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        event_types: Iterable[str] = (),
        error_types: Iterable[str] = (),
        stages: Iterable[str] = (),
        original_topics: Iterable[str] = (),
        error_contains: str | None = None,
        groups: Iterable[str] = (),
    ) -> LetterFilter:
        return cls(
            frozenset(event_types),
            frozenset(error_types),
            frozenset(stages),
            frozenset(original_topics),
            error_contains or None,
            frozenset(groups),
        )

    def __call__(self, letter: DeadLetter) -> bool:
        reason = letter.reason
        if self.event_types and letter.event_type not in self.event_types:
            return False
        if self.error_types and (reason is None or reason.error_type not in self.error_types):
            return False
        if self.stages and (reason is None or reason.stage not in self.stages):
            return False
        if self.original_topics and letter.original_topic not in self.original_topics:
            return False
        if self.groups and not self.groups & {letter.group, letter.metadata.get("group")}:
            return False
        if self.error_contains is not None:
            message = reason.error_message if reason is not None else ""
            if self.error_contains.casefold() not in message.casefold():
                return False
        return True


EVERYTHING = LetterFilter()
