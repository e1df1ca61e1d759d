"""Readiness while Kafka itself is down (a REAL stop of the local broker, marked
`broker_outage`; run under `flock /tmp/dispytch-outage.lock`): ready while receiving, not
ready while the broker is stopped, ready again once it is back; live throughout."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.observability.health import Health

pytestmark = pytest.mark.broker_outage

BOOTSTRAP = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


async def _ready_becomes(health: Health, wanted: bool) -> dict[str, Any]:
    while True:
        report = await health.ready()
        if report.ok is wanted:
            return report.as_dict()
        await asyncio.sleep(0.2)


async def test_kafka_not_ready_while_the_broker_is_down(brokers: Any) -> None:
    from dispytch.kafka import KafkaConsumer

    topic = f"dispytch-ready-{uuid.uuid4().hex[:12]}"
    consumer = KafkaConsumer.create(
        BOOTSTRAP, f"g-{uuid.uuid4().hex[:8]}", topics=[topic], delayed_retries=False
    )
    listener = EventListener(consumer)

    @listener.handler(topic=topic, event="e")
    async def handle(event: Event[Any]) -> None:
        pass

    health = Health(listener, timeout=2.0, cache_for=0)
    async with listener:
        report = await asyncio.wait_for(_ready_becomes(health, True), 60)
        assert report["listeners"] == [{"state": "receiving", "connected": True}]
        await brokers.run("stop", "kafka")
        report = await asyncio.wait_for(_ready_becomes(health, False), 30)
        assert report["listeners"] == [{"state": "receiving", "connected": False}]
        assert (await health.live()).ok
        await brokers.run("start", "kafka")
        await asyncio.wait_for(_ready_becomes(health, True), 120)
