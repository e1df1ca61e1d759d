"""Prometheus metrics of listeners and emitters: `pip install 'dispytch[prometheus]'`.

`PrometheusMetrics` is a `measure.Recorder` and a Prometheus collector: the middleware adds to
plain numbers in dicts (no lock, no label lookup: this runs for every message), and
`collect()` turns them into metric families when the registry is scraped. Register one per
registry (on `prometheus_client`'s default registry unless given one); it serves every
listener and emitter of the process (`instrument(listener_or_emitter)`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any

from dispytch.errors import MissingExtraError
from dispytch.observability.measure import (
    DEFAULT_MAX_EVENT_AGE,
    HandlerLabels,
    measure_emitter,
    measure_listener,
)

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        "metrics need the 'prometheus-client' package: pip install 'dispytch[prometheus]'"
    ) from exc

__all__ = ["DURATION_BUCKETS", "LATENCY_BUCKETS", "PrometheusMetrics"]

#: handler durations, seconds
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: end-to-end latencies, seconds (a retried event can take minutes)
LATENCY_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

_SETTLED = ("topic", "event_type", "outcome")
_DEAD = ("topic", "event_type", "stage")
_HANDLER = ("topic", "event_type", "handler")

#: label values -> count
Counts = dict[tuple[str, ...], float]


class _Histogram:
    """Bucket counts (not cumulative; the last one is +Inf) and sums, by label values."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = sorted(bounds)
        self.by_labels: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        found = self.by_labels.get(labels)
        if found is None:
            found = self.by_labels[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        found[0][bisect.bisect_left(self.bounds, value)] += 1
        found[1][0] += value

    def family(self, name: str, documentation: str, labels: Sequence[str]) -> Metric:
        family = HistogramMetricFamily(name, documentation, labels=labels)
        edges = [*(floatToGoString(b) for b in self.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        for values, (counts, total) in list(self.by_labels.items()):
            cumulative, buckets = 0, []
            for edge, count in zip(edges, list(counts), strict=True):
                cumulative += count
                buckets.append((edge, float(cumulative)))
            family.add_metric(values, buckets, total[0])
        return family


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
        self.namespace = namespace
        self._received: Counts = {}
        self._in_flight = 0
        self._settled: Counts = {}
        self._dead: Counts = {}
        self._calls: Counts = {}
        self._retries: Counts = {}
        self._duration = _Histogram(duration_buckets)
        self._latency = _Histogram(latency_buckets)
        self._ignored = 0
        self._emitted: Counts = {}
        self._lags: Counts = {}
        self.registry.register(self)

    def instrument(self, target: Any, **options: Any) -> None:
        """Add the middleware feeding these metrics to an `EventListener` (options:
        `event_types`, `max_event_age`) or an `EventEmitter`."""
        if hasattr(target, "message_middleware"):
            options.setdefault("max_event_age", DEFAULT_MAX_EVENT_AGE)
            measure_listener(target, self, **options)
        else:
            measure_emitter(target, self)

    # -- measure.Recorder ------------------------------------------------------------------

    def received(self, topic: str) -> None:
        key = (topic,)
        self._received[key] = self._received.get(key, 0) + 1
        self._in_flight += 1

    def settled(self, topic: str, event_type: str, outcome: str, stage: str | None) -> None:
        self._in_flight -= 1
        key = (topic, event_type, outcome)
        self._settled[key] = self._settled.get(key, 0) + 1
        if stage is not None:
            key = (topic, event_type, stage)
            self._dead[key] = self._dead.get(key, 0) + 1

    def handler_finished(
        self, labels: HandlerLabels, seconds: float, failed: bool, age: float | None
    ) -> None:
        key = (*labels, "failed" if failed else "handled")
        self._calls[key] = self._calls.get(key, 0) + 1
        self._duration.observe(labels, seconds)
        if age is not None:
            self._latency.observe(labels, age)

    def timestamp_ignored(self) -> None:
        self._ignored += 1

    def retried(self, labels: HandlerLabels) -> None:
        self._retries[labels] = self._retries.get(labels, 0) + 1

    def emitted(self, topic: str, event_type: str, outcome: str) -> None:
        key = (topic, event_type, outcome)
        self._emitted[key] = self._emitted.get(key, 0) + 1

    # -- kafka_lag.LagRecorder -------------------------------------------------------------

    def lag(self, topic: str, partition: int, records: int) -> None:
        self._lags[(topic, str(partition))] = records

    def lag_gone(self, topic: str, partition: int) -> None:
        self._lags.pop((topic, str(partition)), None)

    # -- prometheus_client's Collector -----------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The metric families, read from the numbers as they are now (`list()` copies each
        dict at once, so a scrape from another thread sees a consistent dict)."""
        n = self.namespace + "_"
        yield _counter(n + "messages_received", "Messages received.", ("topic",), self._received)
        in_flight = GaugeMetricFamily(
            n + "messages_in_flight", "Messages received and not yet settled."
        )
        in_flight.add_metric((), self._in_flight)
        yield in_flight
        yield _counter(n + "messages_settled", "Messages settled, by outcome.", _SETTLED,
                       self._settled)  # fmt: skip
        yield _counter(n + "messages_dead_lettered", "Messages dead-lettered, by stage.", _DEAD,
                       self._dead)  # fmt: skip
        yield _counter(n + "handler_calls", "Handler attempts, handled or failed.",
                       (*_HANDLER, "outcome"), self._calls)  # fmt: skip
        yield _counter(n + "handler_retries", "Handler attempts after the first.", _HANDLER,
                       self._retries)  # fmt: skip
        yield self._duration.family(
            n + "handler_duration_seconds", "Duration of one handler attempt.", _HANDLER
        )
        yield self._latency.family(
            n + "event_latency_seconds",
            "From the event's timestamp to a handler handling it.",
            _HANDLER,
        )
        yield _counter(
            n + "event_timestamps_ignored",
            "Event timestamps too old, or ahead of the clock, to measure a latency by.",
            (), {(): self._ignored},
        )  # fmt: skip
        yield _counter(n + "events_emitted", "Events emitted, by outcome.", _SETTLED,
                       self._emitted)  # fmt: skip
        lag = GaugeMetricFamily(
            n + "kafka_consumer_lag",
            "Records behind the end of the partition (from the committed offset).",
            labels=("topic", "partition"),
        )
        for values, records in list(self._lags.items()):
            lag.add_metric(values, records)
        yield lag


def _counter(name: str, documentation: str, labels: Sequence[str], counts: Counts) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in list(counts.items()):
        family.add_metric(values, count)
    return family
