"""Scenario 5: malformed input on a real broker has its documented outcome, and none of it
stops the listener.

Each bad message is followed by a good event, which must still be handled. Bytes that are
not an envelope are dead-lettered with stage "decode", a body of the wrong shape with stage
"validation", both at once (one attempt); an event type nobody handles is acked. A 10 MB event
is handled where the broker takes it, and refused to the emitter (MessageTooLargeError) where
its size limit (`Capabilities.max_message_bytes`, 1 MB on Kafka by default) says so.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.backends.base import OutgoingMessage
from dispytch.errors import MessageTooLargeError
from dispytch.reasons import DeadLetterReason

from .events import TICK, Tick, TickEvent, tick_id, ticks
from .waiting import wait_for_member, wait_until

TEN_MB = 10 * 1024 * 1024


def envelope(event_type: str, body: Any, event_id: Any = "bad-1") -> bytes:
    return json.dumps({"id": event_id, "type": event_type, "body": body, "timestamp": 1}).encode()


def bad_messages() -> list[tuple[str, bytes, dict[str, str], str | None]]:
    """(name, value, headers, expected dead-letter stage or None when acked)."""
    noise = random.Random(7).randbytes(256)
    whole = envelope(TICK, {"seq": 1}, "truncated")
    return [
        ("random bytes", b"\xff" + noise, {}, "decode"),
        ("truncated JSON", whole[: len(whole) // 2], {}, "decode"),
        ("empty value", b"", {}, "decode"),
        ("a JSON array", b"[1, 2, 3]", {}, "decode"),
        ("a JSON object that is no envelope", b'{"hello": "world"}', {}, "decode"),
        ("an envelope whose id is a number", envelope(TICK, {"seq": 1}, 42), {}, "decode"),
        ("a body of the wrong shape", envelope(TICK, {"seq": "many"}, "wrong-shape"), {},
         "validation"),
        ("an unknown event type", envelope("nobody_handles_this", {}, "unknown"), {}, None),
        ("garbage labelled msgpack", b"\xc1\xc1\xc1", {"content-type": "application/msgpack"},
         "decode"),
        ("invalid UTF-8 in a JSON string", b'{"id": "\xff\xfe", "type": "tick", "body": {}}', {},
         "decode"),
    ]


@pytest.mark.parametrize("backend", ["memory", "kafka", "rabbitmq", "redis", "nats"])
async def test_malformed_input_has_its_documented_outcome(
    backend: str, streams: Any, report: Any
) -> None:
    stream = await streams(backend)
    handled: set[str] = set()
    listener = EventListener(stream.consumer())

    @listener.handler(topic=stream.topic, event=TICK)
    async def handle(event: Event[Tick]) -> None:
        handled.add(event.id)

    bad = bad_messages()
    producer = stream.producer()
    emitter = stream.emitter()
    outcomes: list[str] = []
    async with listener, emitter:
        await producer.start()
        try:
            for seq, (name, value, headers, _) in enumerate(bad):
                await producer.send(
                    OutgoingMessage(topic=stream.topic, value=value, headers=headers), timeout=10
                )
                await emitter.emit(ticks(stream.topic, [seq], keys=0)[0])
                await wait_for_member(handled, tick_id(seq), 30, f"the event after {name}")
            big = TickEvent(id="ten-mb", stream=stream.topic, seq=-1, pad="x" * TEN_MB)
            limit = stream.capabilities.max_message_bytes
            if limit is not None and limit < TEN_MB:
                with pytest.raises(MessageTooLargeError):
                    await emitter.emit(big)
                outcomes.append(f"10 MB refused to the emitter (limit {limit} bytes)")
            else:
                await emitter.emit(big)
                await wait_until(lambda: "ten-mb" in handled, 60, "the 10 MB event")
                outcomes.append("10 MB handled")
            await emitter.emit(ticks(stream.topic, [len(bad)], keys=0)[0])
            await wait_until(lambda: tick_id(len(bad)) in handled, 30, "the event after 10 MB")
        finally:
            await producer.close()
        expected = {value: stage for _, value, _, stage in bad if stage is not None}
        letters = await stream.dead_letters(len(expected))
    assert await stream.unsettled() == 0, "something was left unsettled (the unknown type?)"

    for value, headers in letters:
        reason = DeadLetterReason.from_headers(headers)
        assert reason is not None
        assert value in expected, f"dead-lettered something good: {value[:100]!r}"
        assert reason.stage == expected.pop(value), (value[:60], reason)
        assert reason.attempts == 1
        assert reason.original_topic == stream.topic
    assert not expected, f"not dead-lettered: {list(expected)}"
    report(
        f"{backend}: {len(bad)} malformed messages: {len(letters)} dead-lettered at once "
        f"(decode/validation), unknown type acked, listener never stopped; {outcomes[0]}"
    )
