"""Readiness while Kafka itself is down (a REAL stop of the local broker, marked
`broker_outage`; run under `flock /tmp/dispytch-outage.lock`): ready while receiving, not
ready while the broker is stopped, ready again once it is back; live throughout."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.observability.health import Health
from tests.readiness import walk_the_readiness_cycle

pytestmark = pytest.mark.broker_outage

BOOTSTRAP = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


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
        await walk_the_readiness_cycle(
            health,
            lambda: brokers.run("stop", "kafka"),
            lambda: brokers.run("start", "kafka"),
            ready_within=60,
            down_within=30,
            back_within=120,
        )
