"""Tracing on the in-memory broker: the round trip, untrusted trace headers, and a listener
without tracing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dispytch import Event, EventListener, InMemoryBroker
from dispytch.backends.base import OutgoingMessage
from dispytch.observability.tracing import trace_listener

from .trace_scenario import check_round_trip, run_traced


async def test_one_trace_from_emit_to_handlers() -> None:
    broker = InMemoryBroker()
    run = await run_traced(broker.consumer("billing"), broker.producer(), "orders")
    check_round_trip(run, "orders", "dispytch_memory")
    placed = next(s for s in run.spans if s.name == "process orders")
    assert placed.attributes["messaging.consumer.group.name"] == "billing"
    assert broker.backlog("orders.dlq") == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "00-zzzz-not-a-trace-01"},
        {"traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01"},  # all-zero ids: invalid
        {"traceparent": "x" * 100_000, "tracestate": "=" * 10_000},
        {"baggage": ",".join(["k=v"] * 10_000)},
        {"baggage": "%%%;;;==,,"},
    ],
)
async def test_malformed_trace_headers_start_a_new_trace(headers: dict[str, str]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    trace_listener(listener, tracer_provider=provider)
    handled: list[Any] = []

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Any]) -> None:
        handled.append(event.body)

    value = b'{"id": "1", "type": "e", "body": {"n": 1}, "timestamp": 1}'
    broker.publish(OutgoingMessage(topic="t", value=value, headers=headers))
    async with listener:

        async def settled() -> None:
            while broker.pending("g") or not exporter.get_finished_spans():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), timeout=10)
    assert handled == [{"n": 1}]
    (span,) = exporter.get_finished_spans()
    assert span.parent is None  # a new trace
    assert span.attributes is not None
    assert span.attributes["dispytch.outcome"] == "handled"
