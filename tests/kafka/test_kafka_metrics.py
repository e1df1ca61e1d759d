"""Prometheus metrics of a worker on real Kafka, scraped over HTTP: counters and the consumer
lag per partition from the broker's end offsets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.kafka import KafkaConsumer, KafkaProducer
from dispytch.observability.http import ObservabilityServer
from dispytch.observability.kafka_lag import KafkaLag
from dispytch.observability.prometheus import PrometheusMetrics
from tests.observability.metrics_helpers import scrape, value

from .conftest import NewTopicFactory
from .kafka_helpers import group_name

pytestmark = pytest.mark.kafka


async def test_counters_and_lag_scraped_over_http(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=1)

    class Placed(EventBase):
        __topic__ = topic
        __event_type__ = "placed"
        n: int

    metrics = PrometheusMetrics(CollectorRegistry())
    consumer = KafkaConsumer.create(bootstrap, group_name())
    listener = EventListener(consumer)
    emitter = EventEmitter(KafkaProducer.create(bootstrap))
    metrics.instrument(listener)
    metrics.instrument(emitter)
    release = asyncio.Event()
    handled: list[int] = []

    @listener.handler(topic=topic, event="placed")
    async def handle(event: Event[Any]) -> None:
        if event.body["n"] == 0:
            await release.wait()  # holds the committed offset at 0
        handled.append(event.body["n"])

    async def scraped_until(port: int, check: Any) -> dict[Any, float]:
        while True:
            samples = await scrape(port)
            if check(samples):
                return samples
            await asyncio.sleep(0.1)

    lag = {"topic": topic, "partition": "0"}
    lag_monitor = KafkaLag(listener, metrics, interval=0.2)
    async with emitter:
        await emitter.emit_many([Placed(n=n) for n in range(6)])
        async with (
            ObservabilityServer(metrics=metrics, port=0) as server,
            listener,
            lag_monitor,
        ):
            samples = await asyncio.wait_for(
                scraped_until(
                    server.port,
                    lambda s: (
                        value(s, "dispytch_kafka_consumer_lag", **lag) == 6
                        and value(s, "dispytch_messages_in_flight") == 1
                    ),
                ),
                30,
            )
            assert value(samples, "dispytch_messages_received_total", topic=topic) == 6
            release.set()
            samples = await asyncio.wait_for(
                scraped_until(
                    server.port, lambda s: value(s, "dispytch_kafka_consumer_lag", **lag) == 0
                ),
                30,
            )
    await lag_monitor.refresh()  # the listener stopped: no partition is assigned any more
    assert not next(s for s in metrics.collect() if s.name.endswith("lag")).samples
    assert sorted(handled) == list(range(6))
    assert value(samples, "dispytch_messages_in_flight") == 0
    assert value(
        samples, "dispytch_messages_settled_total",
        topic=topic, event_type="placed", outcome="handled",
    ) == 6  # fmt: skip
    assert (
        value(
            samples,
            "dispytch_events_emitted_total",
            topic=topic,
            event_type="placed",
            outcome="sent",
        )
        == 6
    )
