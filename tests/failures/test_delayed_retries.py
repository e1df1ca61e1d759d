"""Scenario 6: delayed retries keep their attempt count across listener restarts.

With `delayed_retries=True` a failed attempt goes back to the broker with its count in the
`dispytch-attempt` header and comes back after the retry interval. Here the listener is
restarted (a new consumer in the same group) after every attempt: the attempts still count
1, 2, 3, and the event is dead-lettered after its last one. A backend whose consumer lacks
`native_delay` retries in place instead (the documented fallback): that is asserted there.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.backends.base import Consumer
from dispytch.reasons import DeadLetterReason

from .events import TICK, Tick, tick_id, ticks
from .waiting import wait_for_length, wait_until

RETRIES = 2
INTERVAL = 0.5


def _failing_listener(
    consumer: Consumer, topic: str, seen: list[tuple[int, int, float]], generation: int
) -> EventListener:
    listener = EventListener(consumer)

    @listener.handler(
        topic=topic, event=TICK, retries=RETRIES, retry_interval=INTERVAL, delayed_retries=True
    )
    async def handle(event: Event[Tick]) -> None:
        seen.append((generation, event.attempt, time.monotonic()))
        raise ValueError(f"attempt {event.attempt} failed")

    return listener


async def _dead_letter_reason(stream: Any) -> DeadLetterReason:
    (_value, headers), = await stream.dead_letters(1, timeout=30)
    reason = DeadLetterReason.from_headers(headers)
    assert reason is not None
    assert reason.event_id == tick_id(0)
    assert (reason.stage, reason.error_type) == ("handler", "ValueError")
    return reason


async def check_delayed_across_restarts(stream: Any, consumer: Consumer) -> str:
    seen: list[tuple[int, int, float]] = []
    async with stream.emitter() as emitter:
        await emitter.emit(ticks(stream.topic, [0])[0])
    for generation in range(1, RETRIES + 2):
        listener = _failing_listener(consumer, stream.topic, seen, generation)
        async with listener:
            await wait_for_length(seen, generation, 60, f"attempt {generation}")
        # the listener is gone; the next attempt must reach a new one, counted on
        consumer = stream.consumer()
    reason = await _dead_letter_reason(stream)
    assert [(g, a) for g, a, _ in seen] == [(1, 1), (2, 2), (3, 3)], seen
    assert reason.attempts == RETRIES + 1
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(seen)]
    assert all(gap >= INTERVAL * 0.9 for gap in gaps), gaps
    return f"delayed retries across {RETRIES} restarts: attempts 1, 2, 3, then dead-lettered"


async def check_in_place(stream: Any, consumer: Consumer) -> str:
    seen: list[tuple[int, int, float]] = []
    async with stream.emitter() as emitter:
        await emitter.emit(ticks(stream.topic, [0])[0])
    async with _failing_listener(consumer, stream.topic, seen, 1):
        await wait_until(lambda: len(seen) == RETRIES + 1, 30, "every attempt")
        reason = await _dead_letter_reason(stream)
    assert [(g, a) for g, a, _ in seen] == [(1, 1), (1, 2), (1, 3)], seen
    assert reason.attempts == RETRIES + 1
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(seen)]
    assert all(gap >= INTERVAL * 0.9 for gap in gaps), gaps
    return "no native_delay: retried in place (attempts 1, 2, 3 in one listener), dead-lettered"


@pytest.mark.parametrize("backend", ["memory", "kafka", "rabbitmq", "redis", "nats"])
async def test_delayed_retry_count_survives_restarts(
    backend: str, streams: Any, report: Any
) -> None:
    stream = await streams(backend)
    consumer = stream.consumer()
    if consumer.capabilities.native_delay:
        outcome = await check_delayed_across_restarts(stream, consumer)
    else:
        outcome = await check_in_place(stream, consumer)
    assert await stream.unsettled() == 0
    report(f"{backend}: {outcome}")


async def test_without_native_delay_retries_happen_in_place(streams: Any) -> None:
    """The fallback, on a consumer that says it cannot delay (the in-memory one, told so)."""
    stream = await streams("memory")
    consumer = stream.consumer()
    consumer.capabilities = dataclasses.replace(consumer.capabilities, native_delay=False)
    await check_in_place(stream, consumer)
    assert await stream.unsettled() == 0
