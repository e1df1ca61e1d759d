"""How dead letters look on the terminal: a table, JSON lines, one letter in full."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from dispytch.deadletters import DeadLetter

COLUMNS = (
    "index",
    "event id",
    "event type",
    "original topic",
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
    return text if len(text) <= width else text[: width - 1] + "…"


def table_row(letter: DeadLetter) -> list[str]:
    reason = letter.reason
    index = f"{letter.index}{' (replayed)' if letter.replayed else ''}"
    return [
        index,
        _cut(letter.event_id or "-", CELL_WIDTH),
        _cut(letter.event_type or "-", CELL_WIDTH),
        _cut(letter.original_topic or "-", CELL_WIDTH),
        reason.stage if reason else "-",
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
        data["metadata"] = {k: _plain(v) for k, v in letter.metadata.items()}
        envelope = letter.envelope
        if envelope is not None:
            data["envelope"] = {
                "id": envelope.id,
                "type": envelope.type,
                "timestamp": envelope.timestamp,
                "body": envelope.body,
            }
        else:
            data["envelope"] = None
            data["envelope_error"] = letter.envelope_error
            data["value"] = _text_or_base64(letter.value)
    return data


def json_line(letter: DeadLetter, *, full: bool = False) -> str:
    return json.dumps(as_json(letter, full=full), default=str, ensure_ascii=False)


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
    lines += [f"{name.ljust(width)}  {value}" for name, value in fields if value is not None]
    if reason is not None:
        lines += ["", "error:", *("  " + line for line in reason.error_message.splitlines())]
    lines += ["", "headers:"]
    lines += [f"  {name}: {value}" for name, value in sorted(letter.headers.items())]
    if letter.metadata:
        lines += ["", "broker:"]
        lines += [f"  {name}: {value}" for name, value in letter.metadata.items()]
    lines.append("")
    envelope = letter.envelope
    if envelope is not None:
        lines.append("envelope:")
        shown = {
            "id": envelope.id,
            "type": envelope.type,
            "timestamp": envelope.timestamp,
            "body": envelope.body,
        }
        body = json.dumps(shown, indent=2, default=str, ensure_ascii=False)
        lines += ["  " + line for line in body.splitlines()]
    else:
        lines.append(f"value (not an envelope: {letter.envelope_error}):")
        lines.append("  " + (_text_or_base64(letter.value) or ""))
    return "\n".join(lines)


def _when(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def _text_or_base64(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return _text_or_base64(value)
    return value
