"""In-memory throughput: the whole Dispytch path against a hand-written loop (the ceiling).

Both sides do the same work on the same bytes: decode the JSON envelope, validate a small
nested pydantic body, call one dependency, await the handler. Dispytch also goes through the
in-memory broker (receive, route, ack). Rounds alternate; medians are printed.

    .venv/bin/python benchmarks/memory_throughput.py [--events 50000] [--rounds 5] [--rss 1000000]
        [--middleware N]

`--middleware N` adds N no-op middlewares at each of the message and handler-call points (the
cost of middleware that does nothing); the default 0 measures the path without middleware.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

import psutil
import pydantic_core
from workload import UserRegistered, envelope

from dispytch import Dependency, Event, EventListener, HandlerGroup, InMemoryBroker
from dispytch.backends.base import OutgoingMessage

TOPIC = "users"
CHUNK = 10_000


class Service:
    def __init__(self) -> None:
        self.handled = 0


SERVICE = Service()


def get_service() -> Service:
    return SERVICE


def make_payloads(count: int) -> list[bytes]:
    return [envelope(n) for n in range(count)]


async def handle_user(body: UserRegistered, service: Service) -> None:
    service.handled += 1


async def hand_written(payloads: list[bytes]) -> float:
    """The ceiling: the same decode, validation, dependency and call, no framework."""
    validate = UserRegistered.model_validate
    start = time.perf_counter()
    for raw in payloads:
        envelope = pydantic_core.from_json(raw)
        if envelope["type"] == "user_registered":
            body = validate(envelope["body"])
            await handle_user(body, get_service())
    return time.perf_counter() - start


async def no_op(context: object, call_next: Callable[[], Awaitable[object]]) -> object:
    return await call_next()


def build_listener(
    broker: InMemoryBroker, done: asyncio.Event, target: list[int], middleware: int = 0
) -> EventListener:
    group = HandlerGroup()

    @group.handler(topic=TOPIC, event="user_registered")
    async def on_user(
        event: Event[UserRegistered], service: Annotated[Service, Dependency(get_service)]
    ) -> None:
        service.handled += 1
        if service.handled >= target[0]:
            done.set()

    listener = EventListener(broker.consumer("bench"), max_concurrency=100)
    listener.add_handler_group(group)
    for _ in range(middleware):
        listener.message_middleware(no_op)
        listener.handler_middleware(no_op)
    return listener


async def through_dispytch(payloads: list[bytes], chunk: int = CHUNK, middleware: int = 0) -> float:
    """Publish (untimed) and handle (timed) in chunks, so the broker's queue stays small."""
    broker = InMemoryBroker()
    done = asyncio.Event()
    target = [0]
    listener = build_listener(broker, done, target, middleware)
    elapsed = 0.0
    async with listener:
        for first in range(0, len(payloads), chunk):
            part = payloads[first : first + chunk]
            done.clear()
            target[0] = SERVICE.handled + len(part)
            for raw in part:
                broker.publish(OutgoingMessage(TOPIC, raw))
            start = time.perf_counter()
            await done.wait()
            elapsed += time.perf_counter() - start
    return elapsed


async def rss_run(total: int) -> list[tuple[int, float]]:
    """Push `total` events through the listener, sampling RSS (MiB) every 100,000."""
    payloads = make_payloads(CHUNK)
    process = psutil.Process()
    broker = InMemoryBroker()
    done = asyncio.Event()
    target = [0]
    listener = build_listener(broker, done, target)
    samples = []
    handled = 0
    async with listener:
        while handled < total:
            done.clear()
            target[0] = SERVICE.handled + CHUNK
            for raw in payloads:
                broker.publish(OutgoingMessage(TOPIC, raw))
            await done.wait()
            handled += CHUNK
            if handled % 100_000 == 0:
                gc.collect()
                samples.append((handled, process.memory_info().rss / 2**20))
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--middleware", type=int, default=0, help="no-op middlewares at each point (0: none)"
    )
    parser.add_argument(
        "--rss", type=int, default=1_000_000, help="events for the RSS run (0: skip)"
    )
    args = parser.parse_args()

    payloads = make_payloads(args.events)
    await hand_written(payloads[:1000])  # warm up both paths
    await through_dispytch(payloads[:1000], middleware=args.middleware)
    reference, framework = [], []
    for _ in range(args.rounds):
        reference.append(args.events / await hand_written(payloads))
        framework.append(args.events / await through_dispytch(payloads, middleware=args.middleware))
    ratios = [f / r for f, r in zip(framework, reference, strict=True)]
    print(f"{args.events} events x {args.rounds} rounds (alternating), events/s")
    print(f"{'path':<28}{'median':>12}{'min':>12}{'max':>12}")
    for name, rates in (
        ("hand-written loop (ceiling)", reference),
        ("dispytch in-memory", framework),
    ):
        print(
            f"{name:<28}{statistics.median(rates):>12,.0f}{min(rates):>12,.0f}{max(rates):>12,.0f}"
        )
    print(f"{'ratio (median of rounds)':<28}{statistics.median(ratios):>12.2f}")
    if args.rss:
        samples = await rss_run(args.rss)
        print(f"\nRSS while handling {args.rss:,} events (MiB)")
        for handled, rss in samples:
            print(f"{handled:>12,}{rss:>10.1f}")


if __name__ == "__main__":
    asyncio.run(main())
