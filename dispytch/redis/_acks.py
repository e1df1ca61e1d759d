"""Acknowledgements gathered into one XACK per stream: every `ack()` made while the event loop
runs other work waits for the same round trip, instead of one round trip each."""

from __future__ import annotations

import asyncio
from typing import Any


class AckBatcher:
    def __init__(self, group: str) -> None:
        self.group = group
        self._ids: dict[str, list[bytes]] = {}
        self._done: asyncio.Future[None] | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def ack(self, client: Any, stream: str, entry_id: bytes) -> None:
        """Returns once Redis acknowledged the XACK that carried `entry_id` (raises if it
        failed). Cancelling the caller does not cancel the XACK."""
        done = self._done
        if done is None:
            done = self._done = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(self._flush(client, done))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        self._ids.setdefault(stream, []).append(entry_id)
        await asyncio.shield(done)

    async def _flush(self, client: Any, done: asyncio.Future[None]) -> None:
        await asyncio.sleep(0)  # let the acks of this loop iteration join
        ids, self._ids, self._done = self._ids, {}, None
        try:
            async with client.pipeline(transaction=False) as pipe:
                for stream, entries in ids.items():
                    pipe.xack(stream, self.group, *entries)
                await pipe.execute()
        except BaseException as error:
            if not done.done():
                done.set_exception(error)
                done.exception()  # retrieved, whether or not a caller still waits
            if isinstance(error, asyncio.CancelledError):
                raise
        else:
            if not done.done():
                done.set_result(None)

    async def drain(self) -> None:
        """Wait for the XACKs under way (before the consumer gives its entries back)."""
        if self._flushing:
            await asyncio.wait(set(self._flushing), timeout=10)
