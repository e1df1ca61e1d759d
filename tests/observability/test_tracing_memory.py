"""Tracing on the in-memory broker: the round trip, untrusted trace headers, and a listener
without tracing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.backends.base import OutgoingMessage
from dispytch.deadletters import replay_headers
from dispytch.errors import EmitError
from dispytch.observability.tracing import trace_emitter, trace_listener

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
        {},  # no trace context at all
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
        handled.append((event.body, baggage.get_baggage("tenant")))

    value = b'{"id": "1", "type": "e", "body": {"n": 1}, "timestamp": 1}'
    broker.publish(OutgoingMessage(topic="t", value=value, headers=headers))
    # started inside a span and with baggage: neither may leak into the messages' traces
    with provider.get_tracer("app").start_as_current_span("startup"):
        token = otel_context.attach(baggage.set_baggage("tenant", "from-startup"))
        try:
            await listener.__aenter__()
        finally:
            otel_context.detach(token)
    try:

        async def settled() -> None:
            while broker.pending("g") or not any(
                s.kind == SpanKind.CONSUMER for s in exporter.get_finished_spans()
            ):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(settled(), timeout=10)
    finally:
        await listener.__aexit__(None, None, None)
    assert handled == [({"n": 1}, None)]
    (span,) = [s for s in exporter.get_finished_spans() if s.name != "startup"]
    assert span.parent is None  # a new trace
    assert span.attributes is not None
    assert span.attributes["dispytch.outcome"] == "handled"


async def test_a_replayed_dead_letter_continues_the_original_trace() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("billing"))
    emitter = EventEmitter(broker.producer())
    trace_listener(listener, tracer_provider=provider)
    trace_emitter(emitter, tracer_provider=provider)
    failing = [True]

    class Placed(EventBase):
        __topic__ = "orders"
        __event_type__ = "placed"

    @listener.handler(topic="orders", event="placed")
    async def handle(event: Event[Any]) -> None:
        if failing[0]:
            raise ValueError("not yet")

    def processed(count: int) -> bool:
        return sum(s.kind == SpanKind.CONSUMER for s in exporter.get_finished_spans()) >= count

    async with listener:
        await emitter.emit(Placed())
        await asyncio.wait_for(_until(lambda: processed(1)), 10)
        reader = broker.consumer("reader", topics=["orders.dlq"])
        await reader.start([])
        letter = await asyncio.wait_for(reader.receive(), 10)
        await letter.ack()
        failing[0] = False
        # what `dispytch dlq replay` sends: the stored bytes and headers, less the reason
        broker.publish(
            OutgoingMessage("orders", letter.value, headers=replay_headers(letter.headers))
        )
        await asyncio.wait_for(_until(lambda: processed(2)), 10)

    spans = exporter.get_finished_spans()
    (sent,) = [s for s in spans if s.kind == SpanKind.PRODUCER]
    first, replayed = sorted(
        (s for s in spans if s.kind == SpanKind.CONSUMER), key=lambda s: s.start_time or 0
    )
    assert first.attributes is not None
    assert replayed.attributes is not None
    assert first.attributes["dispytch.outcome"] == "dead_lettered"
    assert replayed.attributes["dispytch.outcome"] == "handled"
    assert replayed.context.trace_id == sent.context.trace_id == first.context.trace_id
    assert replayed.parent is not None
    assert replayed.parent.span_id == sent.context.span_id


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)


async def test_a_failed_emit_is_an_error_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broker = InMemoryBroker(max_message_bytes=10)
    emitter = EventEmitter(broker.producer())
    trace_emitter(emitter, tracer_provider=provider)

    class Big(EventBase):
        __topic__ = "orders"
        __event_type__ = "big"
        text: str

    with pytest.raises(EmitError):
        await emitter.emit(Big(text="x" * 100))
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.PRODUCER
    assert not span.status.is_ok
    assert span.attributes is not None
    assert span.attributes["error.type"] == "MessageTooLargeError"
    assert broker.backlog("orders") == 0


async def test_spans_of_a_wildcard_topic_are_named_by_its_pattern() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), topic_delimiter=".")
    emitter = EventEmitter(broker.producer())
    trace_listener(listener, tracer_provider=provider)
    trace_emitter(emitter, tracer_provider=provider)

    class Placed(EventBase):
        __topic__ = "orders.{region}"
        __event_type__ = "placed"
        region: str

    @listener.handler(topic="orders.{region}", event="placed")
    async def handle(event: Event[Any]) -> None:
        pass

    async with listener:
        for region in ("eu", "us"):
            await emitter.emit(Placed(region=region))

        def processed() -> bool:
            return sum(s.kind == SpanKind.CONSUMER for s in exporter.get_finished_spans()) >= 2

        await asyncio.wait_for(_until(processed), 10)
    spans = exporter.get_finished_spans()
    assert {s.name for s in spans} == {"send orders.{region}", "process orders.{region}"}
    for span in spans:
        assert span.attributes is not None
        assert span.attributes["messaging.destination.template"] == "orders.{region}"
    assert {s.attributes["messaging.destination.name"] for s in spans if s.attributes} == {
        "orders.eu", "orders.us",
    }  # fmt: skip


async def test_topics_beyond_the_remembered_ones_are_described_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The span name and topic attributes are kept for a bounded number of topics; past that
    bound each message's span is still its own (name, destination, body size)."""
    monkeypatch.setattr("dispytch.observability.tracing.CACHE_LIMIT", 1)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), topic_delimiter=".")
    trace_listener(listener, tracer_provider=provider)

    @listener.handler(topic="orders.{region}", event="placed")
    async def handle(event: Event[Any]) -> None:
        pass

    sent = [("orders.eu", b"x"), ("orders.asia", b"xx"), ("orders.us", b"xxx"), ("orders.eu", b"")]
    async with listener:
        for topic, padding in sent:
            body = b'{"id":"1","type":"placed","body":{},"timestamp":0}' + padding
            broker.publish(OutgoingMessage(topic, body))
        await asyncio.wait_for(_until(lambda: len(exporter.get_finished_spans()) == 4), 10)
    seen = []
    for span in exporter.get_finished_spans():
        assert span.name == "process orders.{region}"
        assert span.attributes is not None
        assert span.attributes["messaging.destination.template"] == "orders.{region}"
        seen.append(
            (
                span.attributes["messaging.destination.name"],
                span.attributes["messaging.message.body.size"],
            )
        )
    assert sorted(seen) == sorted((topic, 50 + len(padding)) for topic, padding in sent)
