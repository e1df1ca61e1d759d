"""How a Redis Streams consumer leaves its group without losing what it was handed."""

from __future__ import annotations

import asyncio
from typing import Any

#: the consumer name that entries given back on close (or nacked) are parked under
RETURNED_CONSUMER = "dispytch-returned"


async def give_back_pending(
    client: Any, streams: list[str], group: str, name: str, idle_ms: int
) -> None:
    """Hand every entry pending with consumer `name` to a parked name, claimable at once
    (`idle_ms`: the idle time they get), then leave the group: a member without pending
    entries can go without losing anything."""
    for stream in streams:
        while True:
            pending = await client.xpending_range(stream, group, "-", "+", 1000, consumername=name)
            ids = [p["message_id"] for p in pending]
            if not ids:
                break
            await client.xclaim(stream, group, RETURNED_CONSUMER, 0, ids, idle=idle_ms, justid=True)
        await client.xgroup_delconsumer(stream, group, name)


async def finished(task: asyncio.Future[Any]) -> None:
    """Wait (5 s at most) for a cancelled fetch to end (its outcome was given up on)."""
    await asyncio.wait({task}, timeout=5)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: not logged as never retrieved
