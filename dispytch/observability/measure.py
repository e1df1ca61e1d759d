"""Metrics as Dispytch middleware, for any metrics library: the middleware decides what is
counted, with which bounded labels (`labels.Labels`); a `Recorder` (Prometheus, an
OpenTelemetry meter) keeps the numbers.

- per message (message middleware): received, in flight, and settled with its outcome
  ("handled", "no_handler", "skipped", "retried_later", "given_back", "dead_lettered"), and
  dead-lettered with the reason's stage;
- per handler attempt (handler-call middleware): its duration, handled or failed, retried
  (attempt 2 and later), and the end-to-end latency from the event's timestamp when handled;
- per emit (emit middleware): emitted with its outcome ("sent", "timed_out", "failed").
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from dispytch.observability.labels import CACHE_LIMIT, OTHER, Labels, event_age

if TYPE_CHECKING:
    from dispytch.emitter import EventEmitter
    from dispytch.listener import EventListener
    from dispytch.middleware import CallNext, EmitContext, HandlerCall, MessageContext
    from dispytch.middleware.context import HandlerInfo

#: handler labels: topic pattern, event type, handler name
HandlerLabels = tuple[str, str, str]

_clock = time.perf_counter
_wall_clock = time.time

#: events older than this (seconds) have a timestamp not believed for the latency
DEFAULT_MAX_EVENT_AGE = 7 * 24 * 3600.0


class TopicStats(Protocol):
    """The numbers of the messages of one topic label."""

    def received(self) -> None:
        """A message arrived (it is in flight until `settled`)."""

    def settled(self, event_type: str, outcome: str, stage: str | None) -> None:
        """A message was settled (or its processing ended without an outcome: "unsettled");
        `stage`: the dead letter reason's stage, for "dead_lettered"."""


class HandlerStats(Protocol):
    """The numbers of one handler (its topic pattern, event type and name)."""

    def finished(self, seconds: float, failed: bool, age: float | None) -> None:
        """One attempt ended; `age`: the end-to-end latency of a handled event (None when
        failed, or when the event's timestamp was not believable)."""

    def retried(self) -> None: ...


class Recorder(Protocol):
    """Where the numbers go. Label values are bounded by the caller, who asks once per label
    set for the object that keeps its numbers (this runs for every message)."""

    def topic_stats(self, topic: str) -> TopicStats: ...

    def handler_stats(self, labels: HandlerLabels) -> HandlerStats: ...

    def timestamp_ignored(self) -> None: ...

    def emitted(self, topic: str, event_type: str, outcome: str) -> None: ...


class MeasureMessages:
    """A message middleware counting messages and their outcomes."""

    def __init__(self, recorder: Recorder, listener: EventListener, event_types: Any = ()) -> None:
        self.recorder = recorder
        self._listener = listener
        self._event_types = tuple(event_types)
        self._labels: Labels | None = None
        #: by topic label (bounded: the handler patterns and "other")
        self._stats: dict[str, TopicStats] = {}
        #: by topic as received: its label's numbers (one look-up per message, not three)
        self._by_topic: dict[str, TopicStats] = {}
        #: the event types labelled as themselves (known at the first message)
        self._known_types: frozenset[str] = frozenset()

    def labels(self) -> Labels:
        """Built at the first message: the handlers are all registered by then."""
        if self._labels is None:
            self._labels = Labels.of_listener(self._listener, self._event_types)
            self._known_types = self._labels.event_types
        return self._labels

    def _topic_stats(self, topic: str) -> TopicStats:
        label = self.labels().topic(topic)
        stats = self._stats.get(label)
        if stats is None:
            stats = self._stats[label] = self.recorder.topic_stats(label)
        if len(self._by_topic) < CACHE_LIMIT:
            self._by_topic[topic] = stats
        return stats

    async def __call__(self, message: MessageContext, call_next: CallNext) -> Any:
        topic = message.delivery.topic
        stats = self._by_topic.get(topic) or self._topic_stats(topic)
        stats.received()
        try:
            return await call_next()
        finally:
            outcome = message.outcome
            event_type = message.event_type
            if event_type not in self._known_types:  # None too
                event_type = OTHER
            if outcome is None:
                stats.settled(event_type, "unsettled", None)
            else:
                reason = outcome.reason
                stats.settled(event_type, outcome.kind, None if reason is None else reason.stage)


class MeasureHandlerCalls:
    """A handler-call middleware timing each attempt and counting its result."""

    def __init__(self, recorder: Recorder, messages: MeasureMessages, max_event_age: float) -> None:
        self.recorder = recorder
        self._messages = messages
        self.max_event_age = max_event_age
        #: by handler name: its topic pattern and numbers (a listener has a fixed set)
        self._by_handler: dict[str, tuple[str, HandlerStats]] = {}

    def _stats(self, handler: HandlerInfo) -> HandlerStats:
        event_type = self._messages.labels().event_type(handler.event)
        stats = self.recorder.handler_stats((handler.topic, event_type, handler.name))
        self._by_handler[handler.name] = (handler.topic, stats)
        return stats

    async def __call__(self, call: HandlerCall, call_next: CallNext) -> Any:
        handler = call.handler
        found = self._by_handler.get(handler.name)
        # two handlers may share a name: the topic tells them apart
        stats = found[1] if found and found[0] == handler.topic else self._stats(handler)
        if call.attempt > 1:
            stats.retried()
        started = _clock()
        try:
            result = await call_next()
        except BaseException:
            stats.finished(_clock() - started, True, None)
            raise
        seconds = _clock() - started
        age = event_age(call.event.timestamp, _wall_clock(), self.max_event_age)
        if age is None:
            self.recorder.timestamp_ignored()
        stats.finished(seconds, False, age)
        return result


class MeasureEmits:
    """An emit middleware counting emits by the event class's topic and type and outcome."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def __call__(self, emit: EmitContext, call_next: CallNext) -> Any:
        try:
            return await call_next()
        finally:
            event_class = type(emit.event)
            # the class's topic template, not the formatted topic: bounded by the classes
            self.recorder.emitted(
                str(getattr(event_class, "__topic__", "")),
                str(getattr(event_class, "__event_type__", "")),
                emit.outcome or "failed",
            )


def measure_listener(
    listener: EventListener,
    recorder: Recorder,
    *,
    event_types: Any = (),
    max_event_age: float = DEFAULT_MAX_EVENT_AGE,
) -> None:
    """Add the message and handler-call middleware that feed `recorder`. `event_types`: event
    types to label as themselves besides those the handlers name."""
    messages = MeasureMessages(recorder, listener, event_types)
    listener.message_middleware(messages)
    listener.handler_middleware(MeasureHandlerCalls(recorder, messages, max_event_age))


def measure_emitter(emitter: EventEmitter, recorder: Recorder) -> None:
    emitter.emit_middleware(MeasureEmits(recorder))
