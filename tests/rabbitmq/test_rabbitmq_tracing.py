"""Tracing across a real RabbitMQ round trip (see tests/observability/trace_scenario.py)."""

from __future__ import annotations

import pytest

from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQProducer
from tests.observability.trace_scenario import check_round_trip, run_traced

from .conftest import Names

pytestmark = pytest.mark.rabbitmq


async def test_one_trace_from_emit_to_handlers(rabbitmq_url: str, names: Names) -> None:
    topology = names.topology()
    group = names.group("traced")
    consumer = RabbitMQConsumer.create(rabbitmq_url, group, exchange=topology.exchange)
    producer = RabbitMQProducer.create(rabbitmq_url, exchange=topology.exchange)
    run = await run_traced(consumer, producer, "orders")
    check_round_trip(run, "orders", "rabbitmq")
    placed = next(s for s in run.spans if s.name == "process orders")
    assert placed.attributes is not None
    assert placed.attributes["messaging.consumer.group.name"] == group
    assert placed.attributes["messaging.rabbitmq.destination.routing_key"] == "orders"
    assert isinstance(placed.attributes["messaging.rabbitmq.message.delivery_tag"], int)
