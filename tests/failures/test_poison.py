"""Scenario 4: one poison event among a thousand good ones.

The handler always fails on the poison event. It is retried per its policy (retries=2,
retry_interval=0.2), then dead-lettered with its reason; every good event is handled, and the
events that share the poison's key wait for it no longer than the retry policy says.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.reasons import DeadLetterReason

from .events import TICK, Tick, tick_id, ticks
from .waiting import wait_until

EVENTS = 1000
KEYS = 10
POISON = 303  # key k3
RETRIES = 2
INTERVAL = 0.2
#: time allowed on top of the retry waits: the attempts themselves and the dead-letter write
MARGIN = 1.0


@pytest.mark.parametrize("backend", ["memory", "kafka", "rabbitmq", "redis", "nats"])
async def test_poison_event_is_dead_lettered_and_holds_its_key_only_briefly(
    backend: str, streams: Any, report: Any
) -> None:
    stream = await streams(backend, partitions=3)
    events = ticks(stream.topic, range(EVENTS), keys=KEYS)
    events[POISON].poison = True
    async with stream.emitter() as emitter:
        await emitter.emit_many(events)

    attempts: list[float] = []
    started: dict[str, float] = {}
    listener = EventListener(stream.consumer())

    @listener.handler(topic=stream.topic, event=TICK, retries=RETRIES, retry_interval=INTERVAL)
    async def handle(event: Event[Tick]) -> None:
        now = time.monotonic()
        if event.body.poison:
            attempts.append(now)
            raise ValueError("poison tick")
        started.setdefault(event.id, now)

    good = {tick_id(seq) for seq in range(EVENTS) if seq != POISON}
    async with listener:
        await wait_until(lambda: good <= started.keys(), 60, "every good event handled")
        letters = await stream.dead_letters(1)
    assert await stream.unsettled() == 0

    value, headers = letters[0]
    reason = DeadLetterReason.from_headers(headers)
    assert reason is not None
    assert (reason.stage, reason.error_type, reason.error_message) == (
        "handler",
        "ValueError",
        "poison tick",
    )
    assert reason.attempts == RETRIES + 1
    assert reason.event_id == tick_id(POISON)
    assert reason.original_topic == stream.topic
    assert json.loads(value)["id"] == tick_id(POISON)  # the original bytes

    assert len(attempts) == RETRIES + 1
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= INTERVAL * 0.9 for gap in gaps), gaps
    # the next event with the poison's key waits behind it, but only as long as the policy says
    follower = started[tick_id(POISON + KEYS)]
    held = follower - attempts[0]
    policy = RETRIES * INTERVAL
    assert policy * 0.9 <= held <= policy + MARGIN, f"held {held:.3f}s, policy {policy}s"
    others = sum(
        1 for event_id, at in started.items()
        if attempts[0] < at < attempts[-1] and int(event_id.split("-")[1]) % KEYS != POISON % KEYS
    )
    report(
        f"{backend}: poison dead-lettered after {len(attempts)} attempts "
        f"(gaps {', '.join(f'{g:.3f}' for g in gaps)}s); its key held {held:.3f}s "
        f"(policy {policy:.1f}s + {MARGIN}s margin); {others} events of other keys handled "
        f"during its retries"
    )
