"""Consuming, by CPU time: the consume comparisons of the throughput benchmarks, each side's
cost measured as the CPU time of this process rather than the wall clock.

On a machine shared with the brokers and other jobs, wall-clock rates move with whatever else
runs; the CPU time the client side spends per event does not (it leaves out the time spent
waiting for the CPU and for the broker). Same sides as `kafka_throughput.py` and
`rabbitmq_throughput.py`, alternating; medians of rounds; the ratio
is the hand-written side's CPU time over Dispytch's (higher is better, 1.00 = equal).

    .venv/bin/python benchmarks/consume_cpu.py [--backend kafka|rabbitmq|both]
        [--events 20000] [--rounds 5] [--partitions 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import kafka_throughput
import rabbitmq_throughput

Measure = Callable[[], Awaitable[Any]]


async def cpu_of(side: Measure) -> float:
    started = time.process_time()
    await side()
    return time.process_time() - started


async def compare(name: str, events: int, rounds: int, ours: Measure, theirs: Measure) -> None:
    costs: dict[str, list[float]] = {"dispytch": [], "by hand": []}
    sides = [("dispytch", ours), ("by hand", theirs)]
    for round_ in range(rounds):
        for label, side in sides if round_ % 2 == 0 else reversed(sides):
            costs[label].append(await cpu_of(side))
    report(name, events, costs)


def report(name: str, events: int, costs: dict[str, list[float]]) -> None:
    ours_us = statistics.median(costs["dispytch"]) / events * 1e6
    theirs_us = statistics.median(costs["by hand"]) / events * 1e6
    print(f"{name:<24} {ours_us:>12.1f} {theirs_us:>12.1f} {theirs_us / ours_us:>8.2f}")


async def kafka(events: int, rounds: int, partitions: int) -> None:
    topic = await kafka_throughput.create_topic(partitions)
    await kafka_throughput.fill(topic, events)
    await compare(
        f"kafka, {partitions} partition(s)",
        events,
        rounds,
        lambda: kafka_throughput.consume_dispytch(topic, events),
        lambda: kafka_throughput.consume_by_hand(topic, events),
    )


async def rabbitmq(events: int, rounds: int) -> None:
    connection = await aio_pika.connect(rabbitmq_throughput.URL)
    costs: dict[str, list[float]] = {"dispytch": [], "by hand": []}
    sides = [
        ("dispytch", rabbitmq_throughput.consume_dispytch),
        ("by hand", rabbitmq_throughput.consume_raw),
    ]
    try:
        for round_ in range(rounds):
            for label, consume in sides if round_ % 2 == 0 else reversed(sides):
                broker = rabbitmq_throughput.Broker(connection)
                await broker.setup(events)  # a fresh, filled queue: not measured
                try:
                    costs[label].append(await cpu_of(lambda: consume(broker, events)))  # noqa: B023
                finally:
                    await broker.teardown()
    finally:
        await connection.close()
    report("rabbitmq, prefetch 100", events, costs)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("kafka", "rabbitmq", "both"), default="both")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    print(f"CPU time per event (µs), medians of {args.rounds} rounds, {args.events} events")
    print(f"{'consume':<24} {'dispytch':>12} {'by hand':>12} {'ratio':>8}")
    if args.backend in ("kafka", "both"):
        await kafka(args.events, args.rounds, args.partitions)
    if args.backend in ("rabbitmq", "both"):
        await rabbitmq(args.events, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
