"""Topic patterns: `Subscription`, one handler topic split into literal and wildcard segments.

The listener hands its consumer one `Subscription` per distinct handler topic; a backend
subscribes to the literal topic when `is_literal`, and otherwise to whatever its broker offers
(a regular expression from `regex()`, a binding key or subject from `glob()`); `matches()` tells
whether a concrete topic belongs. A wildcard (`*` or a `{name}` placeholder) matches exactly one
non-empty segment.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Subscription:
    """One topic pattern a listener wants messages from.

    `segments` holds the pattern split on `delimiter`: a literal string, or `None` where the
    pattern has a wildcard (`*` or a `{name}` placeholder).
    """

    pattern: str
    delimiter: str
    segments: tuple[str | None, ...]

    @classmethod
    def parse(cls, pattern: str, delimiter: str) -> Subscription:
        parts = pattern.split(delimiter) if delimiter else [pattern]
        segments = tuple(None if is_wildcard(part) else part for part in parts)
        return cls(pattern=pattern, delimiter=delimiter, segments=segments)

    @property
    def is_literal(self) -> bool:
        return None not in self.segments

    def glob(self, wildcard: str = "*", delimiter: str | None = None) -> str:
        """The pattern with every wildcard segment replaced by `wildcard`."""
        joiner = self.delimiter if delimiter is None else delimiter
        return joiner.join(wildcard if part is None else part for part in self.segments)

    def regex(self) -> re.Pattern[str]:
        """A regular expression that fully matches the topics of this subscription."""
        return _compile(self.segments, self.delimiter)

    def matches(self, topic: str) -> bool:
        if self.is_literal:
            return topic == self.pattern
        return self.regex().fullmatch(topic) is not None


def is_wildcard(part: str) -> bool:
    """Whether one segment of a topic pattern is a wildcard: `*` or a `{name}` placeholder."""
    return part == "*" or (len(part) > 2 and part[0] == "{" and part[-1] == "}")


@functools.lru_cache(maxsize=1024)
def _compile(segments: tuple[str | None, ...], delimiter: str) -> re.Pattern[str]:
    any_segment = "[^" + re.escape(delimiter) + "]+" if delimiter else ".+"
    body = re.escape(delimiter).join(
        any_segment if part is None else re.escape(part) for part in segments
    )
    return re.compile(body)
