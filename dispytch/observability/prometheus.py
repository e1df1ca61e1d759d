"""Prometheus metrics of listeners and emitters: `pip install 'dispytch[prometheus]'`.

`PrometheusMetrics` registers the metric families once (on `prometheus_client`'s default
registry unless given one) and is a `measure.Recorder`: `instrument(listener_or_emitter)`
adds the middleware that feeds it. One object serves every listener and emitter of a process
(the families of a registry can be registered once). Label children are looked up once per
label set and cached: the label values are bounded (see `labels.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dispytch.errors import MissingExtraError
from dispytch.observability.measure import (
    DEFAULT_MAX_EVENT_AGE,
    HandlerLabels,
    measure_emitter,
    measure_listener,
)

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        "metrics need the 'prometheus-client' package: pip install 'dispytch[prometheus]'"
    ) from exc

__all__ = ["DURATION_BUCKETS", "LATENCY_BUCKETS", "PrometheusMetrics"]

#: handler durations, seconds
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: end-to-end latencies, seconds (a retried event can take minutes)
LATENCY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

_MESSAGE = ("topic",)
_SETTLED = ("topic", "event_type", "outcome")
_DEAD = ("topic", "event_type", "stage")
_HANDLER = ("topic", "event_type", "handler")


class PrometheusMetrics:
    """The metrics (names with the `namespace` prefix, "dispytch" by default):

    - `_messages_received_total{topic}`, `_messages_in_flight`,
      `_messages_settled_total{topic,event_type,outcome}`,
      `_messages_dead_lettered_total{topic,event_type,stage}`;
    - `_handler_calls_total{topic,event_type,handler,outcome}` (outcome "handled" or
      "failed", one per attempt), `_handler_retries_total{topic,event_type,handler}`,
      `_handler_duration_seconds{topic,event_type,handler}` (histogram),
      `_event_latency_seconds{topic,event_type,handler}` (histogram: from the event's
      timestamp to a handler having handled it), `_event_timestamps_ignored_total`;
    - `_events_emitted_total{topic,event_type,outcome}`;
    - `_kafka_consumer_lag{topic,partition}` (see `kafka_lag.KafkaLag`).

    `topic` is a handler topic pattern (or the emitted class's topic), never a raw topic of a
    wildcard; `event_type` a type a handler names, or "other"."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "dispytch",
        duration_buckets: Sequence[float] = DURATION_BUCKETS,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        self.registry = REGISTRY if registry is None else registry
        common: dict[str, Any] = {"namespace": namespace, "registry": self.registry}
        self._received = Counter("messages_received", "Messages received.", _MESSAGE, **common)
        self._in_flight = Gauge(
            "messages_in_flight", "Messages received and not yet settled.", **common
        )
        self._settled = Counter(
            "messages_settled", "Messages settled, by outcome.", _SETTLED, **common
        )
        self._dead = Counter(
            "messages_dead_lettered", "Messages dead-lettered, by stage.", _DEAD, **common
        )
        self._calls = Counter(
            "handler_calls", "Handler attempts, handled or failed.", (*_HANDLER, "outcome"),
            **common,
        )  # fmt: skip
        self._retries = Counter(
            "handler_retries", "Handler attempts after the first.", _HANDLER, **common
        )
        self._duration = Histogram(
            "handler_duration_seconds", "Duration of one handler attempt.", _HANDLER,
            buckets=duration_buckets, **common,
        )  # fmt: skip
        self._latency = Histogram(
            "event_latency_seconds", "From the event's timestamp to a handler handling it.",
            _HANDLER, buckets=latency_buckets, **common,
        )  # fmt: skip
        self._ignored = Counter(
            "event_timestamps_ignored",
            "Event timestamps too old, or ahead of the clock, to measure a latency by.",
            **common,
        )
        self._emitted = Counter("events_emitted", "Events emitted, by outcome.", _SETTLED, **common)
        self._lag = Gauge(
            "kafka_consumer_lag", "Records behind the end of the partition (committed offset).",
            ("topic", "partition"), **common,
        )  # fmt: skip
        self._children: dict[tuple[Any, ...], Any] = {}

    def instrument(self, target: Any, **options: Any) -> None:
        """Add the middleware feeding these metrics to an `EventListener` (options:
        `event_types`, `max_event_age`) or an `EventEmitter`."""
        if hasattr(target, "message_middleware"):
            options.setdefault("max_event_age", DEFAULT_MAX_EVENT_AGE)
            measure_listener(target, self, **options)
        else:
            measure_emitter(target, self)

    def _child(self, family: Any, *values: str) -> Any:
        key = (family, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*values)
        return child

    # -- measure.Recorder ------------------------------------------------------------------

    def received(self, topic: str) -> None:
        self._child(self._received, topic).inc()

    def in_flight(self, change: int) -> None:
        self._in_flight.inc(change)

    def settled(self, topic: str, event_type: str, outcome: str) -> None:
        self._child(self._settled, topic, event_type, outcome).inc()

    def dead_lettered(self, topic: str, event_type: str, stage: str) -> None:
        self._child(self._dead, topic, event_type, stage).inc()

    def handler_finished(self, labels: HandlerLabels, seconds: float, failed: bool) -> None:
        self._child(self._calls, *labels, "failed" if failed else "handled").inc()
        self._child(self._duration, *labels).observe(seconds)

    def retried(self, labels: HandlerLabels) -> None:
        self._child(self._retries, *labels).inc()

    def latency(self, labels: HandlerLabels, seconds: float | None) -> None:
        if seconds is None:
            self._ignored.inc()
        else:
            self._child(self._latency, *labels).observe(seconds)

    def emitted(self, topic: str, event_type: str, outcome: str) -> None:
        self._child(self._emitted, topic, event_type, outcome).inc()

    # -- kafka_lag.LagRecorder -------------------------------------------------------------

    def lag(self, topic: str, partition: int, records: int) -> None:
        self._child(self._lag, topic, str(partition)).set(records)

    def lag_gone(self, topic: str, partition: int) -> None:
        key = (self._lag, topic, str(partition))
        if self._children.pop(key, None) is not None:
            self._lag.remove(topic, str(partition))
