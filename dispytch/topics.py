"""Filling an event's `__topic__` template, and refusing values that would break its segments.

A `{field}` placeholder stands for one segment of the topic: listeners match it with a `{name}`
or `*` segment, which needs at least one character and no delimiter. So a value is refused
(`TopicFormatError`) when it is empty, or when it contains a delimiter next to its placeholder.
The emitter does not know the listener's delimiter; unless it is given one, it reads it from the
template: the run of separator characters just before the placeholder (`"visits:{city}"`: ":"),
or, when there is none (`"{tenant}:orders"`), just after it. Letters, digits, "_" and "-" belong
to names, never to separators: in `"user-events-{region}"` the value only has to be non-empty.
"""

from __future__ import annotations

import enum
import functools
import re
from typing import Any

from dispytch.errors import EventSerializationError, TopicFormatError

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_MAX_SHOWN = 80

#: a template as literal text and placeholders (field name, delimiters read from the template)
_Piece = str | tuple[str, tuple[str, ...]]


def fill_topic(event: Any, delimiter: str | None = None) -> str:
    """The topic of `event` (an `EventBase`). `delimiter`: the topic delimiter to refuse in
    values; None reads it from the template."""
    event_class = type(event)
    template = getattr(event_class, "__topic__", None)
    if not isinstance(template, str) or not template:
        raise EventSerializationError(f"{event_class.__name__} has no __topic__")
    if "{" not in template:
        return template
    parts: list[str] = []
    for piece in _parse(template):
        if isinstance(piece, str):
            parts.append(piece)
            continue
        name, read_delimiters = piece
        try:
            value = getattr(event, name)
        except AttributeError:
            raise TopicFormatError(
                f"{event_class.__name__}.__topic__ {template!r} names {{{name}}}, "
                "which the event has no field for"
            ) from None
        text = str(value.value if isinstance(value, enum.Enum) else value)
        delimiters = read_delimiters if delimiter is None else (delimiter,)
        _check_segment(text, delimiters, event_class.__name__, template, name)
        parts.append(text)
    return "".join(parts)


def _check_segment(
    text: str, delimiters: tuple[str, ...], class_name: str, template: str, name: str
) -> None:
    where = f"{class_name}.__topic__ {template!r}: {{{name}}}"
    if not text:
        raise TopicFormatError(
            f"{where} is empty; a topic segment needs at least one character, and no handler "
            "pattern matches an empty one"
        )
    for delimiter in delimiters:
        if delimiter and delimiter in text:
            shown = text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
            raise TopicFormatError(
                f"{where} is {shown!r}, which contains the topic delimiter {delimiter!r}: "
                "it would not be one segment, and no handler pattern for it would match"
            )


@functools.lru_cache(maxsize=512)
def _parse(template: str) -> tuple[_Piece, ...]:
    pieces: list[_Piece] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > position:
            pieces.append(template[position : match.start()])
        before = _separator_run(reversed(template[: match.start()]))[::-1]
        after = _separator_run(template[match.end() :]) if not before else ""
        pieces.append((match.group(1), tuple(d for d in (before or after,) if d)))
        position = match.end()
    if position < len(template):
        pieces.append(template[position:])
    return tuple(pieces)


def _separator_run(chars: Any) -> str:
    run = []
    for char in chars:
        if char.isalnum() or char in "_-{}":
            break
        run.append(char)
    return "".join(run)
