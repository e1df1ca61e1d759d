"""The headers the NATS backend writes beside the application's.

NATS header values are one line of text and carry no message key, so the backend writes:

- `dispytch-nats-key`: the key, base64 (keys are bytes);
- `dispytch-nats-b64`: the names of headers whose values were base64-encoded because they hold
  a line break or other control characters (an error message in a dead-letter reason may);
- `dispytch-nats-due`: on a delayed-retry copy, when it is due (epoch milliseconds).

Everything read back is untrusted: bad base64 or numbers are ignored, never raised.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

KEY_HEADER = "dispytch-nats-key"
ENCODED_HEADER = "dispytch-nats-b64"
DUE_HEADER = "dispytch-nats-due"
_OURS = (KEY_HEADER, ENCODED_HEADER, DUE_HEADER)


def _needs_encoding(value: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in value)


def to_nats(headers: Mapping[str, str], key: bytes | None) -> dict[str, str]:
    """The headers to publish: the application's (encoded where NATS cannot carry them) and
    the key."""
    written: dict[str, str] = {}
    encoded: list[str] = []
    for name, value in headers.items():
        if name in _OURS:
            continue
        if _needs_encoding(value):
            written[name] = base64.b64encode(value.encode()).decode()
            encoded.append(name)
        else:
            written[name] = value
    if encoded:
        written[ENCODED_HEADER] = ",".join(encoded)
    if key is not None:
        written[KEY_HEADER] = base64.b64encode(key).decode()
    return written


def from_nats(raw: Mapping[str, str] | None) -> tuple[dict[str, str], bytes | None]:
    """The application's headers and the key of a received message."""
    if not raw:
        return {}, None
    encoded = set(str(raw.get(ENCODED_HEADER, "")).split(","))
    headers: dict[str, str] = {}
    for name, value in raw.items():
        if name in _OURS:
            continue
        text = str(value)
        if name in encoded:
            text = _decoded(text) or text
        headers[str(name)] = text
    key_text = raw.get(KEY_HEADER)
    key = None
    if key_text is not None:
        try:
            key = base64.b64decode(str(key_text), validate=True)
        except (binascii.Error, ValueError):
            key = None
    return headers, key


def _decoded(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, ValueError):
        return None


def due_at_ms(raw: Mapping[str, str] | None) -> int | None:
    """When a delayed-retry copy is due, or None (no or unreadable header: due now)."""
    text = (raw or {}).get(DUE_HEADER)
    if text is None or not str(text).isdigit() or len(str(text)) > 15:
        return None
    return int(str(text))
