"""One traced round trip, the same on every backend: an emit, a handler that opens a span and
emits again, and a handler that fails for good. The tests of each backend check the spans."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends.base import Consumer, Producer
from dispytch.observability.tracing import trace_emitter, trace_listener


@dataclass
class TraceRun:
    spans: list[ReadableSpan]
    baggage_seen: list[object]

    def one(self, name: str, kind: SpanKind | None = None) -> ReadableSpan:
        found = [s for s in self.spans if s.name == name and (kind is None or s.kind == kind)]
        assert len(found) == 1, (name, [s.name for s in self.spans])
        return found[0]


async def run_traced(consumer: Consumer, producer: Producer, topic: str) -> TraceRun:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app_tracer = provider.get_tracer("app")
    listener = EventListener(consumer)
    emitter = EventEmitter(producer)
    trace_listener(listener, tracer_provider=provider)
    trace_emitter(emitter, tracer_provider=provider)
    baggage_seen: list[object] = []

    class Placed(EventBase):
        __topic__ = topic
        __event_type__ = "placed"
        order: int

    class Shipped(EventBase):
        __topic__ = topic
        __event_type__ = "shipped"
        order: int

    class Broken(EventBase):
        __topic__ = topic
        __event_type__ = "broken"
        order: int

    @listener.handler(topic=topic, event="placed")
    async def on_placed(event: Event[Any]) -> None:
        with app_tracer.start_as_current_span("db-call"):
            pass
        baggage_seen.append(baggage.get_baggage("tenant"))
        await emitter.emit(Shipped(order=event.body["order"]))

    @listener.handler(topic=topic, event="shipped")
    async def on_shipped(event: Event[Any]) -> None:
        baggage_seen.append(baggage.get_baggage("tenant"))

    @listener.handler(topic=topic, event="broken", retries=1, retry_interval=0.01)
    async def on_broken(event: Event[Any]) -> None:
        raise ValueError("cannot ship this")

    async with emitter, listener:
        token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            with app_tracer.start_as_current_span("checkout"):
                await emitter.emit(Placed(order=1))
                await emitter.emit(Broken(order=2))
        finally:
            otel_context.detach(token)

        async def processed() -> None:
            while sum(s.kind == SpanKind.CONSUMER for s in exporter.get_finished_spans()) < 3:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(processed(), timeout=30)
    assert trace.get_current_span() is trace.INVALID_SPAN
    return TraceRun(list(exporter.get_finished_spans()), baggage_seen)


def check_round_trip(run: TraceRun, topic: str, system: str) -> None:
    """One trace from the first emit to the last handler, with the links and attributes of
    the semantic conventions, and the dead letter as an error."""
    checkout = run.one("checkout")
    trace_id = checkout.context.trace_id
    send_spans = [s for s in run.spans if s.kind == SpanKind.PRODUCER]
    process_spans = [s for s in run.spans if s.kind == SpanKind.CONSUMER]
    assert len(send_spans) == 3
    assert len(process_spans) == 3
    assert {s.context.trace_id for s in run.spans} == {trace_id}

    by_id = {s.context.span_id: s for s in run.spans}
    placed = next(s for s in process_spans if s.attributes["dispytch.event.type"] == "placed")
    shipped = next(s for s in process_spans if s.attributes["dispytch.event.type"] == "shipped")
    broken = next(s for s in process_spans if s.attributes["dispytch.event.type"] == "broken")
    # emit (child of the app's span) -> process -> the handler's own span and its emit
    sent_placed = by_id[placed.parent.span_id]
    assert sent_placed.kind == SpanKind.PRODUCER
    assert sent_placed.parent.span_id == checkout.context.span_id
    db_call = run.one("db-call")
    assert db_call.parent.span_id == placed.context.span_id
    sent_shipped = by_id[shipped.parent.span_id]
    assert sent_shipped.parent.span_id == placed.context.span_id
    assert run.baggage_seen == ["acme", "acme"]

    assert sent_placed.name == f"send {topic}"
    assert sent_placed.attributes["messaging.system"] == system
    assert sent_placed.attributes["messaging.operation.type"] == "send"
    assert sent_placed.attributes["messaging.destination.name"] == topic
    assert sent_placed.attributes["messaging.message.body.size"] > 0
    assert placed.name == f"process {topic}"
    assert placed.attributes["messaging.system"] == system
    assert placed.attributes["messaging.operation.type"] == "process"
    assert placed.attributes["messaging.destination.name"] == topic
    message_id = sent_placed.attributes["messaging.message.id"]
    assert placed.attributes["messaging.message.id"] == message_id
    assert placed.attributes["messaging.message.body.size"] > 0
    assert placed.attributes["dispytch.outcome"] == "handled"
    assert placed.status.is_ok

    assert not broken.status.is_ok
    assert "handler: ValueError" in (broken.status.description or "")
    assert broken.attributes["dispytch.outcome"] == "dead_lettered"
    assert broken.attributes["error.type"] == "ValueError"
    events = [(e.name, dict(e.attributes or {})) for e in broken.events]
    names = [name for name, _ in events]
    assert names == ["exception", "retry", "exception", "dead_lettered"]
    assert events[0][1]["dispytch.attempt"] == 1
    assert events[2][1]["dispytch.attempt"] == 2
    assert events[1][1]["dispytch.attempt"] == 2
    assert str(events[1][1]["dispytch.handler"]).endswith("on_broken")
    assert events[3][1]["dispytch.dead_letter.stage"] == "handler"
    assert events[3][1]["dispytch.attempt"] == 2
