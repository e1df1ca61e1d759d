"""What the broker benchmarks (RabbitMQ, Redis, NATS) share: the event they emit, the
Dispytch side of the publish scenarios, the command line, and the loop that measures
Dispytch and the hand-written reference in alternating order and prints medians."""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import pydantic_core
from workload import Address, User

from dispytch import EventBase, EventEmitter
from dispytch.backends.base import Producer

Fixture = TypeVar("Fixture")
#: one side of a scenario: measures a run on a fresh fixture, returns the seconds it took
Measure = Callable[[Fixture], Awaitable[float]]
#: the side every ratio is relative to
DISPYTCH = "dispytch"


def event_class(topic: str) -> type[EventBase]:
    """The benchmarks' event (a small nested body) emitted to `topic`."""

    class UserRegisteredEvent(EventBase):
        __topic__ = topic
        __event_type__ = "user_registered"

        user: User
        timestamp: int

    return UserRegisteredEvent


def make_event(event_type: type[EventBase], n: int) -> EventBase:
    user = User(
        id=str(n),
        email=f"user{n}@example.com",
        name=f"User {n}",
        address=Address(street="1 Main St", city="Springfield", zip="12345"),
    )
    return event_type(user=user, timestamp=n)  # type: ignore[call-arg]


def raw_envelope(event: EventBase) -> bytes:
    """What a hand-written producer sends for `event`: the 0.10 envelope (a fresh id and the
    time, as the emitter writes them), serialized with pydantic."""
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "user_registered",
        "body": event.model_dump(mode="json"),
        "timestamp": int(time.time() * 1000),
    }
    return pydantic_core.to_json(envelope)


async def emit_timed(producer: Producer, payload: list[EventBase], batch: bool) -> float:
    """Seconds to emit `payload` one awaited emit() at a time, or with emit_many() in
    batches of 1000."""
    async with EventEmitter(producer) as emitter:
        started = time.perf_counter()
        if batch:
            for start in range(0, len(payload), 1000):
                await emitter.emit_many(payload[start : start + 1000])
        else:
            for event in payload:
                await emitter.emit(event)
        return time.perf_counter() - started


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events to consume")
    parser.add_argument("--publish", type=int, default=5000, help="events to publish")
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


def print_header(where: str, rounds: int, reference: str) -> None:
    print(f"{where}, {rounds} rounds, medians; ratio = dispytch / {reference} rate")
    print(f"{'scenario':<28} {'events':>7} {'dispytch/s':>12} {reference + '/s':>12} {'ratio':>8}")


async def compare(
    name: str,
    events: int,
    rounds: int,
    sides: dict[str, Measure[Fixture]],
    fresh: Callable[[], AbstractAsyncContextManager[Fixture]],
) -> dict[str, float]:
    """Runs every side `rounds` times, each on a fixture of its own (`fresh()` sets it up
    and tears it down), the first side first in even rounds and last in odd ones; prints
    the medians and the ratio of Dispytch's rate to the other side's."""
    times: dict[str, list[float]] = {side: [] for side in sides}
    for round_ in range(rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            async with fresh() as fixture:
                times[side].append(await sides[side](fixture))
    medians = {side: statistics.median(values) for side, values in times.items()}
    (reference,) = (side for side in sides if side != DISPYTCH)
    d, r = medians[DISPYTCH], medians[reference]
    print(f"{name:<28} {events:>7} {events / d:>12,.0f} {events / r:>12,.0f} {r / d:>8.2f}")
    return medians
