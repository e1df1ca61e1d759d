"""How a message sits in a Redis stream entry, and the names of the keys the backend uses.

An entry has the fields `v` (the value, bytes as produced), `k` (the key, absent when the
message has none) and `h` (the headers, a JSON object of strings). Delayed copies and the
group's retry stream add `t` (the topic the copy belongs to). Entries are untrusted: fields
that are missing or malformed decode to empty values, never to an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

VALUE_FIELD = b"v"
KEY_FIELD = b"k"
HEADERS_FIELD = b"h"
TOPIC_FIELD = b"t"

#: the suffix of a topic's dead-letter stream
DEAD_LETTER_SUFFIX = ".dlq"
#: the header a dead letter carries naming the group that gave up on it
GROUP_HEADER = "dispytch-dlq-group"


def dead_letter_stream(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


def retry_stream(group: str) -> str:
    """The stream only `group` reads: delayed copies land here when due."""
    return f"dispytch:retry:{group}"


def delayed_set(group: str) -> str:
    """The sorted set of `group`'s delayed copies (member: an id, score: due time in ms)."""
    return f"dispytch:delayed:{group}"


def delayed_copy(group: str, member: str) -> str:
    """The hash holding one delayed copy's fields."""
    return f"dispytch:delayed:{group}:{member}"


def encode_fields(
    value: bytes, key: bytes | None, headers: Mapping[str, str], topic: str | None = None
) -> dict[bytes, bytes]:
    fields = {VALUE_FIELD: value, HEADERS_FIELD: json.dumps(dict(headers)).encode()}
    if key is not None:
        fields[KEY_FIELD] = key
    if topic is not None:
        fields[TOPIC_FIELD] = topic.encode()
    return fields


def decode_headers(raw: bytes | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(name): value for name, value in loaded.items() if isinstance(value, str)}


def text(raw: bytes | str | None) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw
    return raw.decode(errors="replace")


def id_order(entry_id: bytes) -> tuple[int, int]:
    """A stream entry id as (milliseconds, sequence), for sorting ids."""
    millis, _, sequence = entry_id.partition(b"-")
    try:
        return int(millis), int(sequence or 0)
    except ValueError:
        return 0, 0
