"""Text from brokers made safe for a terminal, and JSON that stays exact but safe to print.

Dead letters carry text that producers control (error messages, headers, event types, topic
names, keys, bodies). Printed raw, an escape sequence in it could retitle, rewrite or hide
parts of the operator's terminal, a carriage return could overwrite a line, and bidi
overrides could make text read backwards. Human-readable output escapes every such character
as Python would (`\\x1b`, `\\u202e`); `--json` keeps the data exact and writes them as JSON
`\\u` escapes, which decode to the same strings.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

#: general categories that never belong on a terminal as such: controls (C0, DEL, C1),
#: format characters (bidi overrides and isolates, zero-width ones), surrogates left by
#: undecodable bytes, private use, and the line and paragraph separators
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
#: candidates: everything but printable ASCII (the category decides for each one)
_CANDIDATE = re.compile(r"[^\x20-\x7e]")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if not _unsafe(char):
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: Any) -> str:
    """`value` as text with every control or format character escaped."""
    return _CANDIDATE.sub(_escaped, value if isinstance(value, str) else str(value))


def printable_lines(text: str) -> list[str]:
    """The lines of `text` (split on newlines only), each one made printable."""
    return [printable(line) for line in text.split("\n")]


def _json_escaped(match: re.Match[str]) -> str:
    char = match.group()
    if not _unsafe(char):
        return char
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)  # JSON escapes a code point as a UTF-16 pair
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def safe_json(data: Any, **options: Any) -> str:
    """`json.dumps(data, ensure_ascii=False, **options)`, with the characters `printable`
    escapes written as `\\u` escapes: the same JSON value, safe to print. Structural
    characters are ASCII, so every such character is inside a string, where the escape is
    valid."""
    return _CANDIDATE.sub(_json_escaped, json.dumps(data, ensure_ascii=False, **options))
