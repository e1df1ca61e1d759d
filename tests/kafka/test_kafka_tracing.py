"""Tracing across a real Kafka round trip (see tests/observability/trace_scenario.py)."""

from __future__ import annotations

import pytest

from dispytch.kafka import KafkaConsumer, KafkaProducer
from tests.observability.trace_scenario import check_round_trip, run_traced

from .conftest import NewTopicFactory
from .kafka_helpers import group_name

pytestmark = pytest.mark.kafka


async def test_one_trace_from_emit_to_handlers(bootstrap: str, new_topic: NewTopicFactory) -> None:
    topic = await new_topic(partitions=2)
    group = group_name()
    consumer = KafkaConsumer.create(bootstrap, group)
    run = await run_traced(consumer, KafkaProducer.create(bootstrap), topic)
    check_round_trip(run, topic, "kafka")
    placed = next(s for s in run.spans if s.name == f"process {topic}")
    assert placed.attributes is not None
    assert placed.attributes["messaging.consumer.group.name"] == group
    assert placed.attributes["messaging.destination.partition.id"] in {"0", "1"}
    assert isinstance(placed.attributes["messaging.kafka.offset"], int)
