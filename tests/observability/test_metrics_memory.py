"""Prometheus metrics: a worker on the in-memory broker, scraped over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.backends.base import OutgoingMessage
from dispytch.errors import EmitError
from dispytch.observability.http import ObservabilityServer
from dispytch.observability.prometheus import PrometheusMetrics

from .metrics_helpers import scrape, value


class Placed(EventBase):
    __topic__ = "orders.{region}"
    __event_type__ = "placed"
    region: str


class Broken(EventBase):
    __topic__ = "orders.{region}"
    __event_type__ = "broken"
    region: str


async def test_a_worker_scraped_over_http() -> None:
    broker = InMemoryBroker()
    metrics = PrometheusMetrics(CollectorRegistry())
    listener = EventListener(broker.consumer("billing"), topic_delimiter=".")
    emitter = EventEmitter(broker.producer())
    metrics.instrument(listener)
    metrics.instrument(emitter)
    release = asyncio.Event()
    in_handler = asyncio.Event()

    @listener.handler(topic="orders.{region}", event="placed")
    async def bill(event: Event[Any]) -> None:
        if event.body["region"] == "slow":
            in_handler.set()
            await release.wait()

    @listener.handler(topic="orders.{region}", event="broken", retries=2, retry_interval=0.01)
    async def fail(event: Event[Any]) -> None:
        raise ValueError("no")

    now_ms = int(time.time() * 1000)
    raw = b'{"id": "x", "type": "%s", "body": {"region": "r"}, "timestamp": %d}'
    async with ObservabilityServer(metrics=metrics, port=0) as server, emitter, listener:
        for region in ("eu", "us", "ap"):  # three raw topics, one pattern
            await emitter.emit(Placed(region=region))
        await emitter.emit(Broken(region="eu"))
        # untrusted timestamps: far in the future, and zero (1970): no latency from them
        broker.publish(OutgoingMessage("orders.eu", raw % (b"placed", now_ms + 10**9)))
        broker.publish(OutgoingMessage("orders.eu", raw % (b"placed", 0)))
        broker.publish(OutgoingMessage("orders.eu", raw % (b"unknown-type", now_ms)))
        await emitter.emit(Placed(region="slow"))
        await asyncio.wait_for(in_handler.wait(), 10)

        async def settled(count: int) -> dict[Any, float]:
            while True:
                samples = await scrape(server.port)
                total = sum(
                    v for (name, _), v in samples.items()
                    if name == "dispytch_messages_settled_total"
                )  # fmt: skip
                if total >= count:
                    return samples
                await asyncio.sleep(0.02)

        samples = await asyncio.wait_for(settled(7), 10)
        assert value(samples, "dispytch_messages_in_flight") == 1  # the slow one
        release.set()
        samples = await asyncio.wait_for(settled(8), 10)

    topic = "orders.{region}"
    assert value(samples, "dispytch_messages_received_total", topic=topic) == 8
    assert value(samples, "dispytch_messages_in_flight") == 0
    settled_by = {
        (dict(labels)["event_type"], dict(labels)["outcome"]): v
        for (name, labels), v in samples.items()
        if name == "dispytch_messages_settled_total"
    }
    assert settled_by == {
        ("placed", "handled"): 6,
        ("broken", "dead_lettered"): 1,
        ("other", "no_handler"): 1,
    }
    assert value(
        samples, "dispytch_messages_dead_lettered_total",
        topic=topic, event_type="broken", stage="handler",
    ) == 1  # fmt: skip
    failing = {"topic": topic, "event_type": "broken", "handler": fail.__qualname__}
    billing = {"topic": topic, "event_type": "placed", "handler": bill.__qualname__}
    assert value(samples, "dispytch_handler_calls_total", **failing, outcome="failed") == 3
    assert value(samples, "dispytch_handler_retries_total", **failing) == 2
    assert value(samples, "dispytch_handler_calls_total", **billing, outcome="handled") == 6
    assert value(samples, "dispytch_handler_duration_seconds_count", **billing) == 6
    assert value(samples, "dispytch_handler_duration_seconds_count", **failing) == 3
    assert value(samples, "dispytch_event_latency_seconds_count", **billing) == 4
    assert value(samples, "dispytch_event_timestamps_ignored_total") == 2
    assert (
        value(
            samples,
            "dispytch_events_emitted_total",
            topic=topic,
            event_type="placed",
            outcome="sent",
        )
        == 4
    )
    # no label holds a raw topic of the wildcard, nor an event id
    label_values = {v for (_, labels) in samples for _, v in labels}
    assert not label_values & {"orders.eu", "orders.us", "orders.ap", "x", "unknown-type"}


async def test_the_endpoint_answers_only_what_it_serves() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    async with ObservabilityServer(metrics=metrics, port=0) as server:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(base + "/nothing")).status_code == 404
            assert (await client.post(base + "/metrics")).status_code == 405
            assert (await client.get(base + "/health/ready")).status_code == 404
            huge = await _raw(server.port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000)
            assert huge == b""  # more than the bounded head: closed unanswered
            assert (await client.get(base + "/metrics")).status_code == 200


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_failed_emits_are_counted_by_outcome() -> None:
    metrics = PrometheusMetrics(CollectorRegistry())
    emitter = EventEmitter(InMemoryBroker(max_message_bytes=200).producer())
    metrics.instrument(emitter)
    await emitter.emit(Placed(region="eu"))
    with pytest.raises(EmitError):
        await emitter.emit(Placed(region="x" * 500))
    samples = {
        (sample.labels["outcome"], sample.value)
        for family in metrics.collect()
        if family.name == "dispytch_events_emitted"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert samples == {("sent", 1), ("failed", 1)}


async def test_topics_beyond_the_remembered_ones_are_labelled_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A topic's numbers are found by the topic as received for a bounded number of topics;
    past that bound each message is still counted under its own pattern and event type."""
    monkeypatch.setattr("dispytch.observability.measure.CACHE_LIMIT", 1)
    metrics = PrometheusMetrics(CollectorRegistry())
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), topic_delimiter=".")
    metrics.instrument(listener)
    handled = []

    @listener.handler(topic="orders.{region}", event="placed")
    async def on_order(event: Event[Any]) -> None:
        handled.append(event.topic)

    @listener.handler(topic="payments", event="paid")
    async def on_payment(event: Event[Any]) -> None:
        handled.append(event.topic)

    def body(event_type: str) -> bytes:
        return b'{"id":"1","type":"%s","body":{},"timestamp":0}' % event_type.encode()

    sent = [("orders.eu", "placed"), ("payments", "paid"), ("orders.us", "placed"),
            ("payments", "unknown"), ("orders.asia", "paid")]  # fmt: skip
    async with listener:
        for topic, event_type in sent:
            broker.publish(OutgoingMessage(topic, body(event_type)))

        async def settled() -> None:
            while sum(_counts(metrics, "dispytch_messages_settled").values()) < len(sent):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), 10)
    assert _counts(metrics, "dispytch_messages_received") == {
        ("orders.{region}",): 3, ("payments",): 2,
    }  # fmt: skip
    settled_by = {
        labels[:2]: n for labels, n in _counts(metrics, "dispytch_messages_settled").items()
    }
    assert settled_by == {
        ("orders.{region}", "placed"): 2, ("payments", "paid"): 1, ("payments", "other"): 1,
        ("orders.{region}", "paid"): 1,
    }  # fmt: skip


def _counts(metrics: PrometheusMetrics, family_name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(sample.labels.values()): sample.value
        for family in metrics.collect()
        if family.name == family_name
        for sample in family.samples
        if sample.name.endswith("_total")
    }
