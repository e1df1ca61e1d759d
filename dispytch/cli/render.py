"""How dead letters look on the terminal: a table, JSON lines, one letter in full.

Everything in a letter came from a producer or a broker: no value may make rendering fail
(undecodable bytes, a timestamp out of range, a body JSON cannot hold), and every character
that could drive the terminal is escaped (see `terminal`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from dispytch.cli.terminal import printable, printable_lines, safe_json
from dispytch.deadletters import DeadLetter

COLUMNS = (
    "index",
    "event id",
    "event type",
    "original topic",
    "group",
    "stage",
    "error type",
    "error",
    "attempts",
    "handler",
)
ERROR_WIDTH = 40
CELL_WIDTH = 36


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= width else text[: width - 1] + "…"
    return printable(text)


def table_row(letter: DeadLetter) -> list[str]:
    reason = letter.reason
    index = f"{letter.index}{' (replayed)' if letter.replayed else ''}"
    return [
        index,
        _cut(letter.event_id or "-", CELL_WIDTH),
        _cut(letter.event_type or "-", CELL_WIDTH),
        _cut(letter.original_topic or "-", CELL_WIDTH),
        _cut(letter.group or "-", CELL_WIDTH),
        _cut(reason.stage, CELL_WIDTH) if reason else "-",
        _cut(reason.error_type, CELL_WIDTH) if reason else "-",
        _cut(reason.error_message, ERROR_WIDTH) if reason else "-",
        str(reason.attempts) if reason else "-",
        _cut(reason.handler or "-", CELL_WIDTH) if reason else "-",
    ]


def table(letters: Sequence[DeadLetter]) -> str:
    rows = [list(COLUMNS), *(table_row(letter) for letter in letters)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def as_json(letter: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    reason = letter.reason
    data: dict[str, Any] = {
        "index": letter.index,
        "location": letter.location,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "original_topic": letter.original_topic,
        "group": letter.group,
        "stage": reason.stage if reason else None,
        "error_type": reason.error_type if reason else None,
        "error": reason.error_message if reason else None,
        "attempts": reason.attempts if reason else None,
        "handler": reason.handler if reason else None,
        "replayed": letter.replayed,
    }
    if full:
        data["timestamp_ms"] = letter.timestamp_ms
        data["key"] = _text_or_base64(letter.key)
        data["headers"] = dict(letter.headers)
        data["metadata"] = {str(k): _plain(v) for k, v in letter.metadata.items()}
        envelope = letter.envelope
        if envelope is not None:
            data["envelope"] = {
                "id": envelope.id,
                "type": envelope.type,
                "timestamp": envelope.timestamp,
                "body": _body(envelope.body),
            }
        else:
            data["envelope"] = None
            data["envelope_error"] = letter.envelope_error
            data["value"] = _text_or_base64(letter.value)
    return data


def json_line(letter: DeadLetter, *, full: bool = False) -> str:
    return _json_text(as_json(letter, full=full))


def details(letter: DeadLetter) -> str:
    """One letter in full, for `dlq show`."""
    reason = letter.reason
    lines = [f"dead letter {letter.index} at {letter.location}"]
    if letter.replayed:
        lines.append("  (replayed already)")
    fields: list[tuple[str, Any]] = [
        ("event id", letter.event_id),
        ("event type", letter.event_type),
        ("original topic", letter.original_topic),
        ("group", letter.group),
        ("stored at", _when(letter.timestamp_ms)),
        ("key", _text_or_base64(letter.key)),
    ]
    if reason is not None:
        fields += [
            ("stage", reason.stage),
            ("error type", reason.error_type),
            ("attempts", reason.attempts),
            ("handler", reason.handler),
        ]
    width = max(len(name) for name, _ in fields)
    lines += [
        f"{name.ljust(width)}  {printable(value)}" for name, value in fields if value is not None
    ]
    if reason is not None:
        lines += ["", "error:", *("  " + line for line in printable_lines(reason.error_message))]
    lines += ["", "headers:"]
    lines += [
        f"  {printable(name)}: {printable(value)}" for name, value in sorted(letter.headers.items())
    ]
    if letter.metadata:
        lines += ["", "broker:"]
        lines += [
            f"  {printable(name)}: {printable(value)}" for name, value in letter.metadata.items()
        ]
    lines.append("")
    envelope = letter.envelope
    if envelope is not None:
        lines.append("envelope:")
        shown = {
            "id": envelope.id,
            "type": envelope.type,
            "timestamp": envelope.timestamp,
            "body": _body(envelope.body),
        }
        lines += ["  " + line for line in _json_text(shown, indent=2).splitlines()]
    else:
        lines.append(f"value (not an envelope: {printable(letter.envelope_error)}):")
        lines.append("  " + printable(_text_or_base64(letter.value) or ""))
    return "\n".join(lines)


def _when(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):  # beyond what datetime (or the OS) can hold
        return f"{timestamp_ms} ms since the epoch (out of range)"
    return moment.isoformat(timespec="milliseconds")


def _text_or_base64(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def _plain(value: Any) -> Any:
    """`value` as JSON can hold it: bytes as text (or base64), mapping keys as strings."""
    if isinstance(value, bytes | bytearray):
        return _text_or_base64(bytes(value))
    if isinstance(value, dict):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _key(key: Any) -> Any:
    if isinstance(key, str | int | float | bool) or key is None:
        return key
    return str(_plain(key))


def _body(body: Any) -> Any:
    try:
        plain = _plain(body)
        json.dumps(plain, default=str)
    except RecursionError:  # nested deeper than Python recurses (MessagePack allows that)
        return "(nested too deeply to show)"
    return plain


def _json_text(data: Any, **options: Any) -> str:
    return safe_json(data, default=str, **options)
