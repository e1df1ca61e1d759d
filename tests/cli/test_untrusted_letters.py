"""Dead letters hold whatever producers wrote. Reading, listing and showing them must never fail
on it, and nothing in them may drive the operator's terminal (no broker needed here; the CLI
runs against the real brokers in test_dlq_hostile.py)."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispytch.cli import render
from dispytch.cli.terminal import printable, safe_json
from dispytch.deadletters import DeadLetter, decode_envelope
from dispytch.envelope import read_envelope
from dispytch.errors import EnvelopeError
from dispytch.reasons import DeadLetterReason

#: characters a hostile producer uses on a terminal: ESC (CSI and OSC sequences), CR, BEL,
#: backspace, DEL, C1 controls (CSI as one byte), bidi overrides and isolates, separators
HOSTILE = [
    "\x1b[2J\x1b[31m",
    "\x1b]0;owned\x07",
    "\r",
    "\x07",
    "\x08",
    "\x7f",
    "\x9b31m",
    "\x85",
    "\u202e",
    "\u2066",
    "\u2028",
    "\udc80",
]
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


def _unsafe_characters(text: str) -> list[str]:
    return [c for c in text if c != "\n" and unicodedata.category(c) in _UNSAFE_CATEGORIES]


def _letter(
    value: bytes,
    headers: dict[str, str],
    *,
    timestamp_ms: int | None = None,
    key: bytes | None = None,
    topic: str = "orders",
) -> DeadLetter:
    envelope, error = decode_envelope(value, headers)
    return DeadLetter(
        index=0,
        location=f"{topic}.dlq[0]@0",
        value=value,
        key=key,
        headers=headers,
        reason=DeadLetterReason.from_headers(headers),
        envelope=envelope,
        envelope_error=error,
        timestamp_ms=timestamp_ms,
        metadata={"topic": topic, "partition": 0, "offset": 0},
    )


def _every_output(letter: DeadLetter) -> list[str]:
    return [
        render.table([letter]),
        render.details(letter),
        render.json_line(letter),
        render.json_line(letter, full=True),
    ]


@pytest.mark.parametrize(
    "raw_timestamp", [b"1e999", b"-1e999", b"Infinity", b"-Infinity", b"NaN", b"1e308"]
)
def test_a_letter_with_a_timestamp_out_of_range_is_shown_with_its_decode_error(
    raw_timestamp: bytes,
) -> None:
    value = b'{"id": "e-1", "type": "t", "body": {}, "timestamp": ' + raw_timestamp + b"}"
    letter = _letter(value, {"dispytch-dlq-stage": "decode"})
    if raw_timestamp == b"1e308":  # finite: a (huge) number of milliseconds
        assert letter.envelope is not None
        assert letter.envelope_error is None
    else:
        assert letter.envelope is None
        assert letter.envelope_error is not None
        assert "EnvelopeError" in letter.envelope_error
        assert "timestamp" in render.details(letter)
    for output in _every_output(letter):
        assert output


@pytest.mark.parametrize("timestamp", [float("inf"), float("-inf"), float("nan")])
def test_the_listener_sees_a_non_finite_timestamp_as_an_envelope_error(timestamp: float) -> None:
    with pytest.raises(EnvelopeError):
        read_envelope({"id": "e", "type": "t", "body": {}, "timestamp": timestamp})


@pytest.mark.parametrize("timestamp_ms", [2**63 - 1, -(2**63), 10**400, 253402300800000])
def test_record_timestamps_out_of_range_are_shown_as_numbers(timestamp_ms: int) -> None:
    letter = _letter(b"x", {}, timestamp_ms=timestamp_ms)
    shown = render.details(letter)
    assert f"{timestamp_ms} ms since the epoch (out of range)" in shown
    assert json.loads(render.json_line(letter, full=True))["timestamp_ms"] == timestamp_ms


def test_reason_headers_that_are_not_numbers_do_not_break_reading() -> None:
    reason = DeadLetterReason.from_headers(
        {"dispytch-dlq-stage": "handler", "dispytch-dlq-attempts": "many" + "9" * 5000}
    )
    assert reason is not None
    assert reason.attempts == 1


def test_a_msgpack_body_json_cannot_hold_is_shown() -> None:
    value = msgpack.packb(
        {"id": "e", "type": "t", "body": {b"raw-key": b"\xff\x00", "deep": [[[1]]]}},
        use_bin_type=True,
    )
    letter = _letter(value, {"content-type": "application/msgpack"})
    assert letter.envelope is not None
    data = json.loads(render.json_line(letter, full=True))
    assert data["envelope"]["body"]["raw-key"] == "base64:/wA="
    assert "raw-key" in render.details(letter)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_control_characters_are_escaped_in_human_output_and_exact_in_json(hostile: str) -> None:
    text = f"before{hostile}after"
    headers = {
        "dispytch-dlq-stage": "handler",
        "dispytch-dlq-error-type": f"Error{hostile}",
        "dispytch-dlq-error": f"boom {text}\nsecond line {text}",
        "dispytch-dlq-original-topic": f"orders{hostile}",
        "dispytch-dlq-handler": f"handle{hostile}",
        "dispytch-dlq-event-type": f"type{hostile}",
        f"x-{hostile}": text,
    }
    value = json.dumps(
        {"id": f"id{hostile}", "type": f"type{hostile}", "body": {"note": text}}
    ).encode()
    letter = _letter(value, headers, key=text.encode("utf-8", "surrogateescape"))
    for output in (render.table([letter]), render.details(letter)):
        assert _unsafe_characters(output) == [], output
        output.encode("utf-8")  # printable on any UTF-8 terminal
    assert printable(hostile) in render.details(letter)  # escaped, not dropped
    for line in (render.json_line(letter), render.json_line(letter, full=True)):
        assert _unsafe_characters(line) == []
        line.encode("utf-8")
        assert "\n" not in line
    full = json.loads(render.json_line(letter, full=True))
    assert full["headers"] == headers  # --json stays exact
    assert full["event_type"] == f"type{hostile}"
    assert full["error"] == f"boom {text}\nsecond line {text}"
    if hostile != "\udc80":  # JSON cannot carry a lone surrogate: that one is no envelope
        assert full["envelope"]["body"] == {"note": text}


_header_text = st.lists(st.text(max_size=8) | st.sampled_from(HOSTILE), max_size=4).map("".join)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _header_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_header_text, inner, max_size=3),
    max_leaves=8,
)


def _envelope_bytes() -> st.SearchStrategy[bytes]:
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "id": _json_values,
            "type": _json_values,
            "body": _json_values,
            "timestamp": _json_values | st.sampled_from([1e999, -1e999]),
        },
    ).map(lambda d: json.dumps(d).encode())
    return st.binary(max_size=64) | shaped


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=_envelope_bytes(),
    headers=st.dictionaries(
        st.sampled_from(
            [
                "content-type",
                "dispytch-dlq-stage",
                "dispytch-dlq-attempts",
                "dispytch-dlq-error",
                "dispytch-dlq-error-type",
                "dispytch-dlq-original-topic",
                "dispytch-dlq-event-type",
            ]
        )
        | _header_text,
        _header_text | st.sampled_from(["application/msgpack", "application/json", "1e999"]),
        max_size=6,
    ),
    timestamp_ms=st.none() | st.integers(),
    key=st.none() | st.binary(max_size=16),
)
def test_no_letter_a_producer_can_write_breaks_reading_or_rendering(
    value: bytes, headers: dict[str, str], timestamp_ms: int | None, key: bytes | None
) -> None:
    letter = _letter(value, headers, timestamp_ms=timestamp_ms, key=key)
    assert (letter.envelope is None) == (letter.envelope_error is not None)
    for output in _every_output(letter):
        assert _unsafe_characters(output) == []
        output.encode("utf-8")
    full: dict[str, Any] = json.loads(render.json_line(letter, full=True))
    assert full["headers"] == headers


def test_safe_json_is_the_same_json_value() -> None:
    data = {"k\u202e": ["\x1b[0m", "\U000e0001", "é", "\udc80"]}
    assert json.loads(safe_json(data)) == data
