"""OpenTelemetry tracing as Dispytch middleware: `pip install 'dispytch[otel]'`.

- `TraceEmits` (emit middleware): a PRODUCER span "send <topic>" around each emit, its context
  injected into the message headers (`traceparent`, `tracestate`, `baggage`, or whatever the
  configured propagator writes).
- `TraceMessages` (message middleware): a CONSUMER span "process <topic>" around each message,
  from its raw bytes to its settling, continuing the trace found in the headers; the current
  span while the handlers run, so their spans are its children and their emits carry it on.
  The outcome is an attribute; a dead letter sets the status to ERROR with the reason.
- `TraceHandlerCalls` (handler-call middleware): each failed attempt is an exception event on
  that span, each retry a "retry" event, with the handler and the attempt number.

`trace_listener` and `trace_emitter` install them. Headers come from the broker and are not
trusted: a trace context that does not parse starts a new trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dispytch.errors import MissingExtraError
from dispytch.observability import attributes as attr
from dispytch.observability.labels import CACHE_LIMIT, Labels

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        "tracing needs the 'opentelemetry-api' package: pip install 'dispytch[otel]'"
    ) from exc

if TYPE_CHECKING:
    from dispytch.emitter import EventEmitter
    from dispytch.listener import EventListener
    from dispytch.middleware import CallNext, EmitContext, HandlerCall, MessageContext

__all__ = ["TraceEmits", "TraceHandlerCalls", "TraceMessages", "trace_emitter", "trace_listener"]

logger = logging.getLogger("dispytch.observability")

_SCOPE = "dispytch"
_EMPTY = otel_context.Context()
#: longest error message kept on a span (it may quote the message)
_MAX_MESSAGE = 500


def _tracer(tracer_provider: trace.TracerProvider | None) -> trace.Tracer:
    return trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)


def _propagator(propagator: TextMapPropagator | None) -> TextMapPropagator:
    return propagator if propagator is not None else propagate.get_global_textmap()


class TraceEmits:
    """An emit middleware: a PRODUCER span per emit, injected into the message headers."""

    def __init__(
        self,
        system: str = "dispytch",
        *,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self.system = system
        self._tracer = _tracer(tracer_provider)
        self._propagator = propagator

    async def __call__(self, emit: EmitContext, call_next: CallNext) -> Any:
        message = emit.message
        event_class = type(emit.event)
        attributes: dict[str, Any] = {
            attr.SYSTEM: self.system,
            attr.DESTINATION: message.topic,
            attr.OPERATION_TYPE: "send",
            attr.OPERATION_NAME: "send",
            attr.MESSAGE_ID: emit.event.id,
            attr.EVENT_TYPE: getattr(event_class, "__event_type__", ""),
            attr.BODY_SIZE: len(message.value),
        }
        # the class's topic template names the span ("orders.{region}"), not each topic
        template = getattr(event_class, "__topic__", None)
        destination = template if isinstance(template, str) else message.topic
        if destination != message.topic:
            attributes[attr.DESTINATION_TEMPLATE] = destination
        span = self._tracer.start_span(
            f"send {destination}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        with trace.use_span(span, end_on_exit=True, record_exception=True):
            _propagator(self._propagator).inject(message.headers)
            try:
                return await call_next()
            finally:
                if emit.outcome != "sent":  # "timed_out", "failed", or None: a middleware raised
                    error = emit.error
                    span.set_attribute(
                        attr.ERROR_TYPE, type(error).__name__ if error else "unknown"
                    )
                    span.set_status(Status(StatusCode.ERROR, f"emit {emit.outcome or 'failed'}"))


class TraceMessages:
    """A message middleware: a CONSUMER span per message, continuing the emitter's trace."""

    def __init__(
        self,
        system: str = "dispytch",
        consumer_group: str | None = None,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
        listener: EventListener | None = None,
    ) -> None:
        """`listener`: whose handler topic patterns name the spans (a span name must have few
        values: `process orders.{region}`, not one per region); without it, the topic."""
        self.system = system
        self.consumer_group = consumer_group
        self._tracer = _tracer(tracer_provider)
        self._propagator = propagator
        self._listener = listener
        self._labels: Labels | None = None
        #: the attributes every message's span has
        self._common: dict[str, Any] = {
            attr.SYSTEM: system,
            attr.OPERATION_TYPE: "process",
            attr.OPERATION_NAME: "process",
        }
        if consumer_group is not None:
            self._common[attr.CONSUMER_GROUP] = consumer_group
        #: by topic: the span name and the attributes known before the message is read (built
        #: once per topic, not per message; bounded like the labels' cache)
        self._by_topic: dict[str, tuple[str, dict[str, Any]]] = {}
        #: a propagator and the header names it reads (asking a composite one builds a set)
        self._fields: tuple[TextMapPropagator | None, frozenset[str]] = (None, frozenset())

    async def __call__(self, message: MessageContext, call_next: CallNext) -> Any:
        delivery = message.delivery
        parent = self._extract(delivery.headers)
        known = self._by_topic.get(delivery.topic) or self._describe(delivery.topic)
        attributes = known[1].copy()
        attributes[attr.BODY_SIZE] = len(delivery.value)
        if delivery.metadata:
            attributes.update(attr.metadata_attributes(self.system, delivery.metadata))
        span = self._tracer.start_span(known[0], parent, SpanKind.CONSUMER, attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            return await call_next()
        except BaseException as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        finally:
            otel_context.detach(token)
            _finish(span, message)
            span.end()

    def _describe(self, topic: str) -> tuple[str, dict[str, Any]]:
        """The span name of a message on `topic`, and its attributes known from the topic."""
        destination = self._destination(topic)
        attributes = {**self._common, attr.DESTINATION: topic}
        if destination != topic:
            attributes[attr.DESTINATION_TEMPLATE] = destination
        known = (f"process {destination}", attributes)
        if len(self._by_topic) < CACHE_LIMIT:
            self._by_topic[topic] = known
        return known

    def _destination(self, topic: str) -> str:
        """What names the span: the handler topic pattern `topic` matches (`other` for a topic
        no handler reads), or `topic` itself without a listener."""
        if self._listener is None:
            return topic
        if self._labels is None:  # at the first message: every handler is registered by then
            self._labels = Labels.of_listener(self._listener)
        return self._labels.topic(topic)

    def _extract(self, headers: Mapping[str, str]) -> otel_context.Context:
        """The trace context in the headers; an empty one (a new trace) when there is none or
        it does not parse. Never the worker's current context: that is whatever was current
        when the listener started, no parent of this message. The propagators ignore what
        they cannot parse; this also survives one that raises on hostile input."""
        propagator = _propagator(self._propagator)
        if self._fields[0] is not propagator:
            self._fields = (propagator, frozenset(propagator.fields))
        if not headers or self._fields[1].isdisjoint(headers):
            return _EMPTY  # nothing to continue: skip the propagators' work
        try:
            return propagator.extract(headers, context=_EMPTY)
        except Exception:
            logger.debug("ignoring trace context headers that do not parse", exc_info=True)
            return _EMPTY


def _finish(span: trace.Span, message: MessageContext) -> None:
    """The message's id, type and outcome on its span; a dead letter's reason as an event
    and the span's ERROR status."""
    if not span.is_recording():
        return
    outcome = message.outcome
    found: dict[str, Any] = {attr.OUTCOME: "unsettled" if outcome is None else outcome.kind}
    if message.event_id is not None:
        found[attr.MESSAGE_ID] = message.event_id
        found[attr.EVENT_TYPE] = message.event_type or ""
    reason = None if outcome is None else outcome.reason
    if reason is not None:
        found[attr.ERROR_TYPE] = reason.error_type
        found[attr.DEAD_LETTER_STAGE] = reason.stage
    span.set_attributes(found)
    if reason is None:
        return
    event: dict[str, Any] = {
        attr.DEAD_LETTER_STAGE: reason.stage,
        attr.ERROR_TYPE: reason.error_type,
        "exception.message": reason.error_message[:_MAX_MESSAGE],
        attr.ATTEMPT: reason.attempts,
    }
    if reason.handler:
        event[attr.HANDLER] = reason.handler
    span.add_event("dead_lettered", event)
    description = f"dead-lettered ({reason.stage}: {reason.error_type})"
    span.set_status(Status(StatusCode.ERROR, description))


class TraceHandlerCalls:
    """A handler-call middleware: the attempts of each handler as events on the message's
    span ("retry" before attempt 2 and later; an exception event for each failed attempt)."""

    async def __call__(self, call: HandlerCall, call_next: CallNext) -> Any:
        if call.attempt > 1:
            trace.get_current_span().add_event(
                "retry", {attr.HANDLER: call.handler.name, attr.ATTEMPT: call.attempt}
            )
        try:
            return await call_next()
        except BaseException as error:
            trace.get_current_span().record_exception(
                error, {attr.HANDLER: call.handler.name, attr.ATTEMPT: call.attempt}
            )
            raise


def trace_listener(
    listener: EventListener,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    propagator: TextMapPropagator | None = None,
) -> None:
    """Trace every message `listener` receives (call it before adding other middleware, so
    that the span is around theirs too). The system and consumer group come from the
    listener's consumer."""
    consumer = listener.consumer
    listener.message_middleware(
        TraceMessages(
            attr.messaging_system(consumer),
            attr.consumer_group(consumer),
            tracer_provider=tracer_provider,
            propagator=propagator,
            listener=listener,
        )
    )
    listener.handler_middleware(TraceHandlerCalls())


def trace_emitter(
    emitter: EventEmitter,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    propagator: TextMapPropagator | None = None,
) -> None:
    """Trace every emit of `emitter` and carry the trace context in the message headers."""
    emitter.emit_middleware(
        TraceEmits(
            attr.messaging_system(emitter.producer),
            tracer_provider=tracer_provider,
            propagator=propagator,
        )
    )
