"""The numbers of `prometheus.PrometheusMetrics`, on an OpenTelemetry meter:
`pip install 'dispytch[otel]'`.

`OtelMetrics(meter_provider)` is a `measure.Recorder` with the same instruments under dotted
names (`dispytch.messages.received`, `dispytch.handler.duration` in seconds, ...) and the same
bounded attributes; `instrument(listener_or_emitter)` adds the middleware. Export them with any
OpenTelemetry metric reader (OTLP, or the Prometheus exporter).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dispytch.errors import MissingExtraError
from dispytch.observability.measure import (
    DEFAULT_MAX_EVENT_AGE,
    HandlerLabels,
    measure_emitter,
    measure_listener,
)

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, Observation
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        "OpenTelemetry metrics need the 'opentelemetry-api' package: pip install 'dispytch[otel]'"
    ) from exc

__all__ = ["OtelMetrics"]


class OtelMetrics:
    """Counters `dispytch.messages.received` {topic}, `dispytch.messages.settled` {topic,
    event_type, outcome}, `dispytch.messages.dead_lettered` {topic, event_type, stage},
    `dispytch.handler.calls` {topic, event_type, handler, outcome},
    `dispytch.handler.retries`, `dispytch.event.timestamps_ignored`, `dispytch.events.emitted`
    {topic, event_type, outcome}; histograms `dispytch.handler.duration` and
    `dispytch.event.latency` (seconds) {topic, event_type, handler}; up-down counter
    `dispytch.messages.in_flight`; gauge `dispytch.kafka.consumer.lag` {topic, partition}."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("dispytch", meter_provider=meter_provider)
        self._received = meter.create_counter("dispytch.messages.received", "{message}")
        self._in_flight = meter.create_up_down_counter("dispytch.messages.in_flight", "{message}")
        self._settled = meter.create_counter("dispytch.messages.settled", "{message}")
        self._dead = meter.create_counter("dispytch.messages.dead_lettered", "{message}")
        self._calls = meter.create_counter("dispytch.handler.calls", "{call}")
        self._retries = meter.create_counter("dispytch.handler.retries", "{call}")
        self._duration = meter.create_histogram("dispytch.handler.duration", "s")
        self._latency = meter.create_histogram("dispytch.event.latency", "s")
        self._ignored = meter.create_counter("dispytch.event.timestamps_ignored", "{event}")
        self._emitted = meter.create_counter("dispytch.events.emitted", "{event}")
        self._lags: dict[tuple[str, int], int] = {}
        meter.create_observable_gauge(
            "dispytch.kafka.consumer.lag", [self._observe_lag], "{record}"
        )
        self._attributes: dict[tuple[str, ...], dict[str, str]] = {}

    def instrument(self, target: Any, **options: Any) -> None:
        """As `PrometheusMetrics.instrument`."""
        if hasattr(target, "message_middleware"):
            options.setdefault("max_event_age", DEFAULT_MAX_EVENT_AGE)
            measure_listener(target, self, **options)
        else:
            measure_emitter(target, self)

    def _attrs(self, names: tuple[str, ...], *values: str) -> dict[str, str]:
        key = (*names, *values)
        found = self._attributes.get(key)
        if found is None:
            found = self._attributes[key] = dict(zip(names, values, strict=True))
        return found

    def topic_stats(self, topic: str) -> _TopicInstruments:
        return _TopicInstruments(self, topic)

    def handler_stats(self, labels: HandlerLabels) -> _HandlerInstruments:
        return _HandlerInstruments(self, labels)

    def timestamp_ignored(self) -> None:
        self._ignored.add(1)

    def emitted(self, topic: str, event_type: str, outcome: str) -> None:
        self._emitted.add(1, self._attrs(_SETTLED, topic, event_type, outcome))

    def lag(self, topic: str, partition: int, records: int) -> None:
        self._lags[(topic, partition)] = records

    def lag_gone(self, topic: str, partition: int) -> None:
        self._lags.pop((topic, partition), None)

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(records, {"topic": topic, "partition": str(partition)})
            for (topic, partition), records in list(self._lags.items())
        ]


class _TopicInstruments:
    """A `measure.TopicStats` on the meter's instruments."""

    def __init__(self, metrics: OtelMetrics, topic: str) -> None:
        self._metrics = metrics
        self._topic = topic
        self._attributes = metrics._attrs(("topic",), topic)

    def received(self) -> None:
        self._metrics._received.add(1, self._attributes)
        self._metrics._in_flight.add(1)

    def settled(self, event_type: str, outcome: str, stage: str | None) -> None:
        metrics, topic = self._metrics, self._topic
        metrics._in_flight.add(-1)
        metrics._settled.add(1, metrics._attrs(_SETTLED, topic, event_type, outcome))
        if stage is not None:
            metrics._dead.add(1, metrics._attrs(_DEAD, topic, event_type, stage))


class _HandlerInstruments:
    """A `measure.HandlerStats` on the meter's instruments."""

    def __init__(self, metrics: OtelMetrics, labels: HandlerLabels) -> None:
        self._metrics = metrics
        self._handler = metrics._attrs(_HANDLER, *labels)
        self._handled = metrics._attrs(_CALL, *labels, "handled")
        self._failed = metrics._attrs(_CALL, *labels, "failed")

    def finished(self, seconds: float, failed: bool, age: float | None) -> None:
        metrics = self._metrics
        metrics._calls.add(1, self._failed if failed else self._handled)
        metrics._duration.record(seconds, self._handler)
        if age is not None:
            metrics._latency.record(age, self._handler)

    def retried(self) -> None:
        self._metrics._retries.add(1, self._handler)


_SETTLED = ("topic", "event_type", "outcome")
_DEAD = ("topic", "event_type", "stage")
_HANDLER = ("topic", "event_type", "handler")
_CALL = ("topic", "event_type", "handler", "outcome")
