"""What observability costs a consumer: events handled per second with tracing and metrics on,
against off (the extras installed, not turned on), against not installed (a child process in
which `opentelemetry` and `prometheus_client` cannot be imported).

Modes, alternating round by round in one process:
- off: a plain listener;
- metrics: `PrometheusMetrics` (its own registry) on the listener;
- tracing: `trace_listener` with the SDK's TracerProvider and a BatchSpanProcessor whose
  exporter discards the spans (what span creation, attributes and export queueing cost);
- both: tracing and metrics;
- sdk by hand, sdk floor: no Dispytch tracing, a message middleware written by hand with the
  same SDK setup (`tracer_provider()`) and the same span (context extracted from the headers,
  one CONSUMER span per message, the same attributes, current while the handler runs):
  "by hand" with `start_as_current_span` as in the SDK's examples, "floor" with `start_span`
  and `context.attach`/`detach`, the cheapest way through the API. What "floor" costs over
  "off" is the SDK's own price; what "tracing" costs over "floor" is Dispytch's;
- "... unsampled": the `traceparent` says not sampled (the SDK's default parent-based sampler
  then creates a non-recording span);
- empty layers (`--single` only): a message and a handler-call middleware that only call
  `call_next`, what the core's middleware layers cost by themselves.
Every message carries a `traceparent` header (an emitter's trace), so extracting it is part of
the work. The work per event is the other benchmarks' (tests/benchmarks/workload.py): decode
the envelope, validate a small nested body, call the handler.

In memory: publish a chunk (untimed), handle it (timed). On Kafka: a topic filled beforehand,
read by a fresh consumer group per round, timed from the first event handled to the last.

    .venv/bin/python benchmarks/observability_overhead.py [--events 20000] [--rounds 5]
        [--kafka-events 20000] [--kafka-rounds 3] [--no-kafka]

Timings on a shared machine vary more than some of the effects; instructions per event do not.
`--single MODE --events N` runs one in-memory round of one mode, to count them:

    for n in 500 2500; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python benchmarks/observability_overhead.py --single metrics --events $n; done

(the difference of the two counts, divided by 2000, is the instructions per event; they
include building and publishing the message, the same in every mode: compare differences).
Counted with valgrind 3, CPython 3.11, opentelemetry-sdk 1.45, 300 and 1300 events, in
thousands of instructions per event; "before": the first observability code, "after": with
the span name and attributes built once per topic and the metrics' look-ups cut (the
references "sdk ..." and "empty layers" do not run Dispytch's observability code):

    mode                    before   after   over off (after)
    off                      158.5   158.1
    empty layers                     173.5    +15.0  (the core's two middleware layers)
    metrics                  184.9   184.1    +25.6  (so ~10.6 k Dispytch's own counting)
    sdk floor                        424.1   +265.6  (the SDK itself)
    sdk by hand                      451.8   +293.3  (the SDK, as in its examples)
    tracing                  436.7   435.7   +277.2  (Dispytch: +11.6 k over the floor)
    both                     460.2   452.0   +293.5
    sdk floor unsampled              265.7   +107.2  (the SDK, non-recording span)
    both unsampled           298.6   295.0   +136.5  (metrics +25.6, tracing ~+111)

Counts move by a few thousand from run to run (the export thread, hash seeds); "over off" is
against 158.5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from workload import UserRegistered, envelope

BOOTSTRAP = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
TOPIC = "users"
CHUNK = 10_000
MODES = ("off", "metrics", "tracing", "both", "sdk by hand", "sdk floor")
#: sampled by the emitter (flags 01): the consumer's span is recorded and exported
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#: not sampled (flags 00): the consumer's span is not recorded (the default parent-based sampler)
UNSAMPLED = TRACEPARENT[:-2] + "00"
BLOCKED = ("opentelemetry", "prometheus_client")


class _Blocker:
    """An import hook that makes the observability libraries look not installed."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")


def instrument(listener: Any, mode: str) -> None:
    if mode in ("metrics", "both", "both unsampled"):
        from prometheus_client import CollectorRegistry

        from dispytch.observability.prometheus import PrometheusMetrics

        PrometheusMetrics(CollectorRegistry()).instrument(listener)
    if mode in ("tracing", "both", "both unsampled"):
        from dispytch.observability.tracing import trace_listener

        trace_listener(listener, tracer_provider=tracer_provider())
    if mode.startswith("sdk"):
        trace_by_hand(listener, tracer_provider(), cheapest="floor" in mode)
    if mode == "empty layers":  # what the middleware layers cost by themselves (the core's)

        async def passing(context: Any, call_next: Any) -> Any:
            return await call_next()

        listener.message_middleware(passing)
        listener.handler_middleware(passing)


def tracer_provider() -> Any:
    """What production uses: the SDK's TracerProvider (its default sampler, parent-based
    always-on, or what OTEL_TRACES_SAMPLER says) and a BatchSpanProcessor, with an exporter
    that discards the spans (the queueing is measured, not a network)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=100_000))
    return provider


def trace_by_hand(listener: Any, provider: Any, cheapest: bool) -> None:
    """The reference: what a user would write with the SDK alone, as a plain message
    middleware (the same place in the listener as Dispytch's): extract the context from the
    headers, one CONSUMER span per message with the same attributes, current while the
    handler runs, ended. What it costs over "off" is the SDK's; "tracing" over it, Dispytch's.
    `cheapest`: `start_span` and `context.attach`/`detach` (the floor) rather than the
    `start_as_current_span` context manager of the SDK's examples."""
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import SpanKind

    tracer = provider.get_tracer("by-hand")
    propagator = propagate.get_global_textmap()

    def attributes(delivery: Any) -> dict[str, Any]:
        return {
            "messaging.system": "dispytch_memory",
            "messaging.destination.name": delivery.topic,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.consumer.group.name": "bench",
            "messaging.message.body.size": len(delivery.value),
        }

    def found(message: Any) -> dict[str, Any]:
        return {
            "messaging.message.id": message.event_id or "",
            "dispytch.event.type": message.event_type or "",
            "dispytch.outcome": message.outcome.kind if message.outcome else "unsettled",
        }

    async def as_in_the_examples(message: Any, call_next: Any) -> Any:
        delivery = message.delivery
        parent = propagator.extract(delivery.headers)
        with tracer.start_as_current_span(
            f"process {delivery.topic}", parent, SpanKind.CONSUMER, attributes(delivery)
        ) as span:
            try:
                return await call_next()
            finally:
                span.set_attributes(found(message))

    async def cheapest_way(message: Any, call_next: Any) -> Any:
        delivery = message.delivery
        parent = propagator.extract(delivery.headers)
        span = tracer.start_span(
            f"process {delivery.topic}", parent, SpanKind.CONSUMER, attributes(delivery)
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            return await call_next()
        finally:
            context.detach(token)
            span.set_attributes(found(message))
            span.end()

    listener.message_middleware(cheapest_way if cheapest else as_in_the_examples)


def build(consumer: Any, mode: str, on_event: Callable[[], None], topic: str = TOPIC) -> Any:
    from dispytch import Event, EventListener

    listener = EventListener(consumer, max_concurrency=100)
    instrument(listener, mode)

    @listener.handler(topic=topic, event="user_registered")
    async def on_user(event: Event[UserRegistered]) -> None:
        on_event()

    return listener


async def memory_round(payloads: list[bytes], mode: str) -> float:
    """Events per CPU second in memory (the process's CPU time, the span export thread's
    included: less disturbed by other processes on a shared machine than wall time)."""
    from dispytch import InMemoryBroker
    from dispytch.backends.base import OutgoingMessage

    broker = InMemoryBroker()
    done = asyncio.Event()
    state = {"handled": 0, "target": 0}

    def on_event() -> None:
        state["handled"] += 1
        if state["handled"] >= state["target"]:
            done.set()

    listener = build(broker.consumer("bench"), mode, on_event)
    elapsed = 0.0
    headers = {"traceparent": UNSAMPLED if mode.endswith("unsampled") else TRACEPARENT}
    async with listener:
        for first in range(0, len(payloads), CHUNK):
            part = payloads[first : first + CHUNK]
            done.clear()
            state["target"] = state["handled"] + len(part)
            for raw in part:
                broker.publish(OutgoingMessage(TOPIC, raw, headers=dict(headers)))
            started = time.process_time()
            await done.wait()
            elapsed += time.process_time() - started
    return len(payloads) / elapsed


async def kafka_fill(count: int) -> str:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"bench-obs-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5)
    await producer.start()
    try:
        headers = [("traceparent", TRACEPARENT.encode())]
        futures = [await producer.send(topic, envelope(n), headers=headers) for n in range(count)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return topic


async def kafka_round(topic: str, count: int, mode: str) -> float:
    """Events per second on Kafka, first event handled to last."""
    from dispytch.kafka import KafkaConsumer

    done = asyncio.Event()
    state = {"handled": 0, "first": 0.0}

    def on_event() -> None:
        state["handled"] += 1
        if state["handled"] == 1:
            state["first"] = time.perf_counter()
        if state["handled"] == count:
            done.set()

    consumer = KafkaConsumer.create(BOOTSTRAP, f"bench-{uuid.uuid4().hex}", delayed_retries=False)
    async with build(consumer, mode, on_event, topic):
        await asyncio.wait_for(done.wait(), 300)
        finished = time.perf_counter()
    return (count - 1) / (finished - state["first"])


def report(title: str, results: dict[str, list[float]]) -> None:
    base = statistics.median(results["off"])
    print(f"\n{title}: events/s, median of {len(results['off'])} rounds")
    for mode, rates in results.items():
        median = statistics.median(rates)
        print(f"  {mode:14} {median:10.0f}   {100 * (median / base - 1):+6.1f} % vs off")


async def memory_rounds(
    payloads: list[bytes], modes: Sequence[str], rounds: int
) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {mode: [] for mode in modes}
    for mode in modes:  # warm up
        await memory_round(payloads[:1000], mode)
    for _ in range(rounds):
        for mode in modes:
            results[mode].append(await memory_round(payloads, mode))
    return results


async def kafka_rounds(count: int, rounds: int) -> dict[str, list[float]]:
    topic = await kafka_fill(count)
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            results[mode].append(await kafka_round(topic, count, mode))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kafka-events", type=int, default=20_000)
    parser.add_argument("--kafka-rounds", type=int, default=3)
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument("--not-installed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--single",
        choices=(*MODES, "both unsampled", "sdk floor unsampled", "empty layers"),
        help="one round of one mode, in memory",
    )
    args = parser.parse_args()
    payloads = [envelope(n) for n in range(args.events)]
    if args.single:  # for counting instructions: valgrind --tool=callgrind ... --single both
        asyncio.run(memory_round(payloads, args.single))
        return

    if args.not_installed:  # the child process: only the plain listener, libraries blocked
        sys.meta_path.insert(0, _Blocker())  # type: ignore[arg-type]
        rates = asyncio.run(memory_rounds(payloads, ["off"], args.rounds))["off"]
        assert not any(name.split(".")[0] in BLOCKED for name in sys.modules)
        print(json.dumps(rates))
        return

    memory: dict[str, list[float]] = {
        mode: [] for mode in (*MODES, "both unsampled", "sdk floor unsampled")
    }
    memory["not installed"] = []
    for _ in range(args.rounds):  # each round: every mode here, then one in a child process
        for mode, rates in asyncio.run(memory_rounds(payloads, [*memory][:-1], 1)).items():
            memory[mode] += rates
        child = subprocess.run(
            [sys.executable, __file__, "--not-installed", "--events", str(args.events),
             "--rounds", "1"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        memory["not installed"] += json.loads(child.stdout.strip().splitlines()[-1])
    report("in memory (per CPU second)", memory)
    if not args.no_kafka:
        kafka = asyncio.run(kafka_rounds(args.kafka_events, args.kafka_rounds))
        report(f"Kafka ({args.kafka_events} events, 4 partitions; wall time)", kafka)


if __name__ == "__main__":
    main()
