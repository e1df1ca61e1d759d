"""Bounded, key-ordered concurrency for deliveries.

At most `max_concurrency` deliveries are in the pool at once (running or waiting behind their
key): `acquire()` blocks the fetch loop until there is room, so nothing is fetched beyond the
limit. Deliveries that share a non-None `ordering_key` run one after another in the order they
were submitted; the others run concurrently on a fixed set of worker tasks (no task per message).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

from dispytch.backends.base import Delivery

logger = logging.getLogger("dispytch.listener")

Handle = Callable[[Delivery], Awaitable[None]]


class OrderedWorkerPool:
    def __init__(self, handle: Handle, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._handle = handle
        self._slots = asyncio.Semaphore(max_concurrency)
        self._ready: asyncio.Queue[Delivery] = asyncio.Queue()
        #: keys with a delivery running or queued; the deque holds the ones waiting behind it
        self._waiting_by_key: dict[Hashable, deque[Delivery]] = {}
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._workers = [
            asyncio.create_task(self._work(), name=f"dispytch-worker-{n}")
            for n in range(max_concurrency)
        ]

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def is_worker(self, task: asyncio.Task[object] | None) -> bool:
        return task is not None and task in self._workers

    async def acquire(self) -> None:
        """Wait for room for one more delivery."""
        await self._slots.acquire()

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery; `acquire()` must have been awaited for it."""
        self._in_flight += 1
        self._idle.clear()
        key = delivery.ordering_key
        if key is not None:
            waiting = self._waiting_by_key.get(key)
            if waiting is not None:
                waiting.append(delivery)
                return
            self._waiting_by_key[key] = deque()
        self._ready.put_nowait(delivery)

    async def drain(self, timeout: float | None) -> bool:
        """Wait until every submitted delivery was handled; False if `timeout` ran out."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Cancel the workers (and any handler still running: its delivery stays unsettled)."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        handle = self._handle
        while True:
            delivery: Delivery | None = await self._ready.get()
            while delivery is not None:
                try:
                    await handle(delivery)
                except Exception:  # handle() settles and logs itself; this is a last guard
                    logger.exception("unexpected error while handling a delivery")
                delivery = self._finish(delivery)

    def _finish(self, delivery: Delivery) -> Delivery | None:
        """Release the delivery's slot; return the next one waiting behind its key, if any."""
        self._slots.release()
        self._in_flight -= 1
        following = None
        key = delivery.ordering_key
        if key is not None:
            waiting = self._waiting_by_key[key]
            if waiting:
                following = waiting.popleft()
            else:
                del self._waiting_by_key[key]
        if self._in_flight == 0:
            self._idle.set()
        return following
