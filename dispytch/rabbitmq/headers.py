"""AMQP headers <-> Dispytch's string headers, and the headers Dispytch keeps for itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the exact topic (the routing key has the delimiter translated, see `topology`)
TOPIC_HEADER = "dispytch-topic"
#: the message key: AMQP has none (a string when it is UTF-8, a byte array otherwise)
KEY_HEADER = "dispytch-key"
#: the routing key a delayed redelivery had before it went through its delay queue
ROUTING_KEY_HEADER = "dispytch-routing-key"
#: the consumer group (queue) that dead-lettered a message
GROUP_HEADER = "dispytch-dlq-group"

INTERNAL_HEADERS = frozenset({TOPIC_HEADER, KEY_HEADER, ROUTING_KEY_HEADER})
#: headers the broker adds on dead-lettering and redelivery (they show in the metadata)
_BROKER_HEADER_PREFIXES = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count")


def encode_key(key: bytes) -> str | bytearray:
    try:
        return key.decode()
    except UnicodeDecodeError:
        return bytearray(key)


def decode_key(value: Any) -> bytes | None:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if value is None:
        return None
    return str(value).encode()


def to_text_headers(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """The application headers of a received message, as strings.

    Dispytch's own headers, the broker's dead-lettering bookkeeping and structured values
    (tables, arrays) are left out: they are not application headers.
    """
    headers: dict[str, str] = {}
    for name, value in (raw or {}).items():
        if name in INTERNAL_HEADERS or name.startswith(_BROKER_HEADER_PREFIXES):
            continue
        if isinstance(value, (dict, list, tuple)) or value is None:
            continue
        if isinstance(value, (bytes, bytearray)):
            headers[name] = bytes(value).decode(errors="replace")
        else:
            headers[name] = str(value)
    return headers


def death_count(raw: Mapping[str, Any] | None) -> int:
    """How many times the broker dead-lettered the message (delayed redeliveries)."""
    deaths = (raw or {}).get("x-death")
    if not isinstance(deaths, (list, tuple)):
        return 0
    # any producer may set the header: an entry without a count the broker would write
    # (a non-negative integer) counts as one
    return sum(_count(d.get("count")) for d in deaths if isinstance(d, dict))


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 1


def redelivery_count(raw: Mapping[str, Any] | None) -> int | None:
    """A quorum queue's `x-delivery-count`: how often the message was delivered before (None
    when absent, or not a count: a producer may have set the header too)."""
    count = (raw or {}).get("x-delivery-count")
    return count if type(count) is int and count >= 0 else None
