"""The readiness cycle every backend's readiness test walks: ready while receiving, not ready
while the connection is down, ready again once the client has reconnected, live throughout.
How the connection goes down and comes back is the test's own (a `BrokerGate`, or a real stop
of the broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from dispytch.observability.health import Health

RECEIVING_AND_CONNECTED = [{"state": "receiving", "connected": True}]
RECEIVING_NOT_CONNECTED = [{"state": "receiving", "connected": False}]


async def ready_becomes(health: Health, wanted: bool, poll: float = 0.05) -> dict[str, Any]:
    while True:
        report = await health.ready()
        if report.ok is wanted:
            return report.as_dict()
        await asyncio.sleep(poll)


async def walk_the_readiness_cycle(
    health: Health,
    go_down: Callable[[], Awaitable[Any]],
    come_back: Callable[[], Awaitable[Any]],
    *,
    ready_within: float = 10,
    down_within: float = 10,
    back_within: float = 30,
) -> None:
    report = await asyncio.wait_for(ready_becomes(health, True), ready_within)
    assert report["listeners"] == RECEIVING_AND_CONNECTED
    await go_down()
    report = await asyncio.wait_for(ready_becomes(health, False), down_within)
    assert report["listeners"] == RECEIVING_NOT_CONNECTED
    assert (await health.live()).ok
    await come_back()
    report = await asyncio.wait_for(ready_becomes(health, True), back_within)
    assert report["listeners"] == RECEIVING_AND_CONNECTED
