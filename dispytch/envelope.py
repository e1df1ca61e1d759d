"""The wire envelope, compatible with dispytch 0.10:
`{"id": str, "type": str, "body": {...}, "timestamp": epoch milliseconds}`."""

from __future__ import annotations

import math
from typing import Any

from dispytch.errors import EnvelopeError

#: (id, type, body, timestamp) of a received envelope: a plain tuple, as it is read for every
#: message and a named tuple costs several times more to build
Envelope = tuple[str, str, Any, int | None]


def build_envelope(event_id: str, event_type: str, body: Any, timestamp_ms: int) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "body": body, "timestamp": timestamp_ms}


def read_envelope(payload: Any) -> Envelope:
    """Check a deserialized payload's shape. Raises `EnvelopeError` naming what is wrong."""
    if type(payload) is not dict:
        raise EnvelopeError(f"envelope must be an object, got {type(payload).__name__}")
    try:
        event_id = payload["id"]
        event_type = payload["type"]
        body = payload["body"]
    except KeyError as missing:
        raise EnvelopeError(f"envelope has no {missing.args[0]!r} field") from None
    timestamp = payload.get("timestamp")
    if type(event_id) is not str:
        raise EnvelopeError("envelope 'id' must be a string")
    if type(event_type) is not str:
        raise EnvelopeError("envelope 'type' must be a string")
    if timestamp is not None and type(timestamp) is not int:
        if type(timestamp) is float and math.isfinite(timestamp):
            timestamp = int(timestamp)
        else:  # 1e999 and Infinity decode to inf, which int() refuses with OverflowError
            raise EnvelopeError("envelope 'timestamp' must be epoch milliseconds")
    return event_id, event_type, body, timestamp
