"""The headers that carry an event's id, type and timestamp when a schema format is used, so
that the payload is exactly the record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EVENT_ID_HEADER = "dispytch-event-id"
EVENT_TYPE_HEADER = "dispytch-event-type"
EVENT_TIMESTAMP_HEADER = "dispytch-event-timestamp"


def event_headers(envelope: Mapping[str, Any]) -> dict[str, str]:
    return {
        EVENT_ID_HEADER: envelope["id"],
        EVENT_TYPE_HEADER: envelope["type"],
        EVENT_TIMESTAMP_HEADER: str(envelope["timestamp"]),
    }


def timestamp_of(headers: Mapping[str, str]) -> int | None:
    """The event's timestamp header as epoch milliseconds; None when absent or not a number."""
    text = headers.get(EVENT_TIMESTAMP_HEADER)
    if text is None or not 0 < len(text) <= 20:
        return None
    try:
        return int(text)
    except ValueError:
        return None
