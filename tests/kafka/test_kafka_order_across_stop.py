"""Order per key across a stop, on the real broker (issue 16, item 1): a keyed stream, a
handler whose event on one key fails with retries left when the worker is stopped, a restart.
The given-back event and everything after it with its key are handled once each, in order;
records of other keys that Kafka reads again (the commit stops at the given-back offset) are
handled again in their own order."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from dispytch import EventListener
from dispytch.events import Event
from dispytch.kafka import KafkaConsumer

from .conftest import NewTopicFactory
from .kafka_helpers import eventually, group_name

pytestmark = pytest.mark.kafka

KEYS = [f"customer-{n}" for n in range(6)]
PER_KEY = 40
FAILING = ("customer-0", 5)


def _envelope(event_type: str, body: dict[str, object]) -> bytes:
    payload = {"id": str(uuid.uuid4()), "type": event_type, "body": body, "timestamp": 1}
    return json.dumps(payload).encode()


async def _produce_stream(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, _envelope("placed", {"key": key, "seq": seq}), key=key.encode()
            )
            for seq in range(PER_KEY)
            for key in KEYS
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _produce_end_markers(bootstrap: str, topic: str, partitions: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(partitions):
            await producer.send_and_wait(
                topic, _envelope("end", {"partition": partition}), partition=partition
            )
    finally:
        await producer.stop()


def _listener(
    bootstrap: str,
    group: str,
    topic: str,
    run: list[tuple[str, int]],
    *,
    fail: bool,
    failed: asyncio.Event,
    ends: set[int],
) -> EventListener:
    listener = EventListener(
        KafkaConsumer.create(bootstrap, group, commit_interval=0.05),
        max_concurrency=100,
        shutdown_grace=10.0,
    )

    @listener.handler(topic=topic, event="placed", retries=5, retry_interval=30.0)
    async def place(event: Event[dict[str, object]]) -> None:
        handled = (str(event.body["key"]), int(str(event.body["seq"])))
        if fail and handled == FAILING:
            failed.set()
            raise RuntimeError("payment service down")
        run.append(handled)

    @listener.handler(topic=topic, event="end")
    async def end(event: Event[dict[str, int]]) -> None:
        ends.add(event.body["partition"])

    return listener


async def test_a_given_back_event_keeps_its_key_in_order_across_a_restart(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=3)
    group = group_name()
    await _produce_stream(bootstrap, topic)
    first: list[tuple[str, int]] = []
    second: list[tuple[str, int]] = []
    failed = asyncio.Event()
    ends: set[int] = set()

    listener = _listener(bootstrap, group, topic, first, fail=True, failed=failed, ends=ends)
    async with listener:
        await asyncio.wait_for(failed.wait(), 30.0)

        async def others_done() -> bool:
            return sum(1 for key, _ in first if key != FAILING[0]) == PER_KEY * (len(KEYS) - 1)

        await eventually(others_done, timeout=30.0, what="the other keys handled")
    # stopped while the failing event waited for its retry: given back

    await _produce_end_markers(bootstrap, topic, 3)
    listener = _listener(bootstrap, group, topic, second, fail=False, failed=failed, ends=ends)
    async with listener:

        async def all_ends() -> bool:
            return ends == {0, 1, 2}

        await eventually(all_ends, timeout=30.0, what="the end markers")
    # the stop drained what was fetched before the markers: everything read again is handled

    failing_key = FAILING[0]
    handled = [seq for key, seq in first + second if key == failing_key]
    assert handled == list(range(PER_KEY)), "the failing key: each event once, in order"
    for run in (first, second):
        for key in KEYS:
            seqs = [seq for k, seq in run if k == key]
            assert seqs == sorted(set(seqs)), f"{key} out of order or twice within one run"
    everything = Counter(first + second)
    assert set(everything) == {(key, seq) for key in KEYS for seq in range(PER_KEY)}
    duplicates = sum(count - 1 for count in everything.values())
    print(f"duplicates (other keys read again after the given-back offset): {duplicates}")
    assert all(everything[(failing_key, seq)] == 1 for seq in range(PER_KEY))
