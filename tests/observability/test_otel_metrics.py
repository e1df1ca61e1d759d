"""The same numbers on an OpenTelemetry meter (read with the SDK's in-memory reader)."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.observability.otel_metrics import OtelMetrics


class Placed(EventBase):
    __topic__ = "orders"
    __event_type__ = "placed"
    n: int


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


async def test_counters_and_histograms_on_a_meter() -> None:
    reader = InMemoryMetricReader()
    metrics = OtelMetrics(MeterProvider(metric_readers=[reader]))
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    emitter = EventEmitter(broker.producer())
    metrics.instrument(listener)
    metrics.instrument(emitter)

    @listener.handler(topic="orders", event="placed")
    async def handle(event: Event[Any]) -> None:
        if event.body["n"] == 2:
            raise ValueError("no")

    async with listener:
        for n in range(3):
            await emitter.emit(Placed(n=n))

        async def settled() -> None:
            while broker.pending("g") or broker.backlog("orders.dlq") < 1:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), 10)
    metrics.lag("orders", 0, 5)
    points = _points(reader)
    settled_points = {
        point.attributes["outcome"]: point.value for point in points["dispytch.messages.settled"]
    }
    assert settled_points == {"handled": 2, "dead_lettered": 1}
    assert points["dispytch.messages.received"][0].value == 3
    assert points["dispytch.messages.in_flight"][0].value == 0
    assert points["dispytch.handler.duration"][0].count == 3
    assert points["dispytch.event.latency"][0].count == 2
    assert dict(points["dispytch.events.emitted"][0].attributes) == {
        "topic": "orders", "event_type": "placed", "outcome": "sent",
    }  # fmt: skip
    assert points["dispytch.events.emitted"][0].value == 3
    (lag,) = points["dispytch.kafka.consumer.lag"]
    assert lag.value == 5
    assert dict(lag.attributes) == {"topic": "orders", "partition": "0"}
