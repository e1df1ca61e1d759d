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


class _TopicCounts:
    """The numbers of one topic label (a `measure.TopicStats`)."""

    __slots__ = ("dead", "in_flight", "received_count", "settled_counts")

    def __init__(self) -> None:
        self.received_count = 0
        self.in_flight = 0
        #: by (event type, outcome), and dead letters by (event type, stage)
        self.settled_counts: Counts = {}
        self.dead: Counts = {}

    def received(self) -> None:
        self.received_count += 1
        self.in_flight += 1

    def settled(self, event_type: str, outcome: str, stage: str | None) -> None:
        self.in_flight -= 1
        key = (event_type, outcome)
        self.settled_counts[key] = self.settled_counts.get(key, 0) + 1
        if stage is not None:
            key = (event_type, stage)
            self.dead[key] = self.dead.get(key, 0) + 1


class _HandlerCounts:
    """The numbers of one handler (a `measure.HandlerStats`); histogram buckets are kept
    per bucket (not cumulative), the last one +Inf."""

    __slots__ = (
        "duration",
        "duration_bounds",
        "duration_sum",
        "failed",
        "handled",
        "latency",
        "latency_bounds",
        "latency_sum",
        "retries",
    )

    def __init__(self, duration_bounds: list[float], latency_bounds: list[float]) -> None:
        self.handled = self.failed = self.retries = 0
        self.duration_bounds = duration_bounds
        self.duration = [0] * (len(duration_bounds) + 1)
        self.duration_sum = 0.0
        self.latency_bounds = latency_bounds
        self.latency = [0] * (len(latency_bounds) + 1)
        self.latency_sum = 0.0

    def finished(self, seconds: float, failed: bool, age: float | None) -> None:
        if failed:
            self.failed += 1
        else:
            self.handled += 1
        self.duration[bisect.bisect_left(self.duration_bounds, seconds)] += 1
        self.duration_sum += seconds
        if age is not None:
            self.latency[bisect.bisect_left(self.latency_bounds, age)] += 1
            self.latency_sum += age

    def retried(self) -> None:
        self.retries += 1


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
        self._duration_bounds = sorted(duration_buckets)
        self._latency_bounds = sorted(latency_buckets)
        self._topics: dict[str, _TopicCounts] = {}
        self._handlers: dict[tuple[str, ...], _HandlerCounts] = {}
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

    def topic_stats(self, topic: str) -> _TopicCounts:
        found = self._topics.get(topic)
        if found is None:  # shared by every listener instrumented with this object
            found = self._topics[topic] = _TopicCounts()
        return found

    def handler_stats(self, labels: HandlerLabels) -> _HandlerCounts:
        found = self._handlers.get(labels)
        if found is None:
            found = self._handlers[labels] = _HandlerCounts(
                self._duration_bounds, self._latency_bounds
            )
        return found

    def timestamp_ignored(self) -> None:
        self._ignored += 1

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
        """The metric families, read from the numbers as they are now (`list()` copies a
        dict at once, so that a scrape from another thread never iterates a changing one)."""
        n = self.namespace + "_"
        topics = list(self._topics.items())
        received: Counts = {}
        settled: Counts = {}
        dead: Counts = {}
        in_flight = 0
        for topic, counts in topics:
            received[(topic,)] = counts.received_count
            in_flight += counts.in_flight
            for (event_type, outcome), count in list(counts.settled_counts.items()):
                settled[(topic, event_type, outcome)] = count
            for (event_type, stage), count in list(counts.dead.items()):
                dead[(topic, event_type, stage)] = count
        yield _counter(n + "messages_received", "Messages received.", ("topic",), received)
        gauge = GaugeMetricFamily(
            n + "messages_in_flight", "Messages received and not yet settled."
        )
        gauge.add_metric((), in_flight)
        yield gauge
        yield _counter(n + "messages_settled", "Messages settled, by outcome.", _SETTLED,
                       settled)  # fmt: skip
        yield _counter(n + "messages_dead_lettered", "Messages dead-lettered, by stage.", _DEAD,
                       dead)  # fmt: skip
        handlers = list(self._handlers.items())
        calls: Counts = {}
        for labels, stats in handlers:
            handled, failed = (*labels, "handled"), (*labels, "failed")
            calls[handled], calls[failed] = stats.handled, stats.failed
        yield _counter(n + "handler_calls", "Handler attempts, handled or failed.",
                       (*_HANDLER, "outcome"), calls)  # fmt: skip
        yield _counter(n + "handler_retries", "Handler attempts after the first.", _HANDLER,
                       {labels: stats.retries for labels, stats in handlers})  # fmt: skip
        yield _histogram(
            n + "handler_duration_seconds", "Duration of one handler attempt.",
            self._duration_bounds,
            [(labels, stats.duration, stats.duration_sum) for labels, stats in handlers],
        )  # fmt: skip
        yield _histogram(
            n + "event_latency_seconds", "From the event's timestamp to a handler handling it.",
            self._latency_bounds,
            [(labels, stats.latency, stats.latency_sum) for labels, stats in handlers],
        )  # fmt: skip
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


def _histogram(
    name: str,
    documentation: str,
    bounds: Sequence[float],
    series: list[tuple[tuple[str, ...], list[int], float]],
) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=_HANDLER)
    edges = [*(floatToGoString(b) for b in bounds), "+Inf"]  # type: ignore[no-untyped-call]
    for labels, counts, total in series:
        cumulative, buckets = 0, []
        for edge, count in zip(edges, list(counts), strict=True):
            cumulative += count
            buckets.append((edge, float(cumulative)))
        family.add_metric(labels, buckets, total)
    return family


def _counter(name: str, documentation: str, labels: Sequence[str], counts: Counts) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in list(counts.items()):
        family.add_metric(values, count)
    return family
