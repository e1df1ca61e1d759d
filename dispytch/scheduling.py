"""Bounded, key-ordered concurrency for deliveries.

At most `max_concurrency` deliveries are in the pool at once (running or waiting behind their
key): the fetch loop calls `wait_for_room()` before it receives another message, so nothing is
fetched beyond the limit. Deliveries that share a non-None `ordering_key` run one after another
in the order they were submitted; the others run concurrently on a fixed set of worker tasks
(no task per message). A worker takes ready deliveries without suspending while there are any,
so a busy pool costs no event-loop round trip per message.

A delivery given back to the broker (`nack()`: the listener stopped while its handler had
retries left, or the worker's last guard) takes the deliveries waiting behind its key with it:
they are given back too, never run, so that nothing after a given-back message with the same key
runs in this process (the broker delivers them again, in order, after it).

Only `close()` cancels a worker. A `CancelledError` that reaches handler code any other way (the
handler awaited a task or future someone else cancelled, or something cancelled the worker task
from outside) is that handler's failure: `is_failure()` tells the two apart on every
Python version (3.11's `Task.cancelling()` does not exist on 3.10), and the worker survives it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

from dispytch.backends.base import Delivery

logger = logging.getLogger("dispytch.listener")

Handle = Callable[[Delivery], Awaitable[None]]

#: the pool whose worker runs the current task (its workers are started with it set)
_running_pool: contextvars.ContextVar[OrderedWorkerPool | None] = contextvars.ContextVar(
    "dispytch_running_pool", default=None
)


def is_failure(error: BaseException) -> bool:
    """Whether `error`, raised in a worker by handler code or a backend call, is a failure to
    handle (retried, dead-lettered, logged) rather than the pool closing: every error is, apart
    from the `CancelledError` of a worker whose pool is cancelling it, which must go on up.

    When it is a `CancelledError` that counts as a failure, a cancel request aimed at this task
    (from outside the pool) is withdrawn, so that the worker goes on as if nothing happened."""
    if not isinstance(error, asyncio.CancelledError):
        return True
    pool = _running_pool.get()
    if pool is None or pool.closing:
        return False
    withdraw_cancel_requests()
    return True


def given_back(delivery: Delivery) -> None:
    """`delivery` (being handled by a worker of the current pool) goes back to the broker:
    the deliveries waiting behind its key must not run after it."""
    pool = _running_pool.get()
    if pool is not None:
        pool.give_back_followers(delivery)


def withdraw_cancel_requests() -> None:
    """Forget the cancel requests made to the current task (a `CancelledError` it handles as
    a failure, which was not meant to end it)."""
    task = asyncio.current_task()
    uncancel = getattr(task, "uncancel", None)  # Python 3.11+ counts the requests
    if uncancel is not None:
        while uncancel() > 0:
            pass


class OrderedWorkerPool:
    def __init__(self, handle: Handle, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._handle = handle
        self._max = max_concurrency
        # A full pool lets the fetch loop go on only once half of it is free again: fewer
        # wake-ups, and bigger batches from `receive_many`, than refilling one place at a time.
        self._resume_at = max_concurrency - max(1, max_concurrency // 2)
        self._ready: deque[Delivery] = deque()
        #: keys with a delivery running or ready; the deque holds the ones waiting behind it
        self._waiting_by_key: dict[Hashable, deque[Delivery]] = {}
        #: keys whose running delivery was given back: what waits behind them goes back too
        self._given_back_keys: set[Hashable] = set()
        self._in_flight = 0
        self._idle_workers: deque[asyncio.Future[None]] = deque()
        #: workers woken for ready deliveries that have not run yet
        self._woken = 0
        self._room: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._drain_cut = False
        self._closing = False
        inside_pool = _running_pool.set(self)  # copied into each worker's context
        try:
            self._workers = [
                asyncio.create_task(self._work(), name=f"dispytch-worker-{n}")
                for n in range(max_concurrency)
            ]
        finally:
            _running_pool.reset(inside_pool)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def closing(self) -> bool:
        """`close()` is cancelling the workers."""
        return self._closing

    async def wait_for_room(self) -> None:
        """Return once one more delivery may be submitted."""
        while self._in_flight >= self._max:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery (after `wait_for_room()`)."""
        self._in_flight += 1
        key = delivery.ordering_key
        if key is not None:
            waiting = self._waiting_by_key.get(key)
            if waiting is not None:
                waiting.append(delivery)
                return
            self._waiting_by_key[key] = deque()
        self._ready.append(delivery)
        if not self._woken:
            self._wake_one()

    def give_back_followers(self, delivery: Delivery) -> None:
        """`delivery` was given back: give back (do not run) what waits behind its key."""
        key = delivery.ordering_key
        if key is not None and key in self._waiting_by_key:
            self._given_back_keys.add(key)

    def _wake_one(self) -> None:
        # One woken worker at a time: a worker that takes a delivery wakes the next one if more
        # are ready. Waking one per submit would cost a task switch per message when handlers
        # finish without suspending (one worker then handles them all).
        idle = self._idle_workers
        while idle:
            worker = idle.popleft()
            if not worker.done():
                worker.set_result(None)
                self._woken += 1
                return

    async def drain(self, timeout: float | None) -> bool:
        """Wait until every submitted delivery was handled; False if `timeout` ran out or
        `stop_draining()` cut the wait short."""
        if self._in_flight == 0:
            return True
        if self._drain_cut:
            return False
        self._drained = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(asyncio.shield(self._drained), timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self._drained = None
        return self._in_flight == 0

    def stop_draining(self) -> None:
        """End `drain()` now, and every later one at once (a forced stop)."""
        self._drain_cut = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def close(self) -> None:
        """Cancel the workers (and any handler still running: its delivery stays unsettled)."""
        self._closing = True
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _work(self) -> None:
        handle = self._handle
        ready = self._ready
        loop = asyncio.get_running_loop()
        while True:
            if not ready:
                waiter = loop.create_future()
                self._idle_workers.append(waiter)
                await waiter
                self._woken -= 1
                continue
            delivery: Delivery | None = ready.popleft()
            if ready and not self._woken:
                self._wake_one()
            while delivery is not None:
                try:
                    await handle(delivery)
                except (Exception, asyncio.CancelledError) as error:
                    # handle() settles and logs itself; this is a last guard, which keeps the
                    # worker, its place and the key whatever escaped (a CancelledError from a
                    # backend's settle call, say), unless the pool is closing
                    if not is_failure(error):
                        raise
                    await self._give_back(delivery, error)
                # the delivery's place is free (inlined: this runs for every message); the
                # fetch loop and drain() wait for fewer in flight than the resume point
                self._in_flight -= 1
                if self._in_flight <= self._resume_at and (
                    self._room is not None or self._drained is not None
                ):
                    self._signal_room()
                key = delivery.ordering_key
                if key is None:
                    delivery = None
                elif self._given_back_keys and key in self._given_back_keys:
                    await self._give_back_waiting(key)
                    delivery = None
                else:
                    delivery = self._following(key)

    async def _give_back(self, delivery: Delivery, error: BaseException) -> None:
        logger.error(
            "unexpected error handling a message on %r; nacking it",
            delivery.topic,
            exc_info=error,
        )
        self.give_back_followers(delivery)
        try:
            await delivery.nack()
        except (Exception, asyncio.CancelledError) as nack_error:
            if not is_failure(nack_error):
                raise

    async def _give_back_waiting(self, key: Hashable) -> None:
        """The delivery before them was given back: nack those waiting behind `key`, in order
        (the broker keeps their order), so that none runs after it in this process. New
        deliveries with the key that arrive while this goes on are given back as well."""
        waiting = self._waiting_by_key[key]
        count = 0
        while waiting:
            follower = waiting.popleft()
            count += 1
            try:
                await follower.nack()
            except (Exception, asyncio.CancelledError) as nack_error:
                if not is_failure(nack_error):
                    raise
                logger.exception("could not nack a message on %r either", follower.topic)
            self._in_flight -= 1
            self._signal_room()
        del self._waiting_by_key[key]
        self._given_back_keys.discard(key)
        if count:
            logger.info(
                "%d message(s) waiting behind a given-back one with the same key go back too "
                "(order per key)",
                count,
            )

    def _following(self, key: Hashable) -> Delivery | None:
        """The next delivery waiting behind `key` (whose previous one is done), if any."""
        waiting = self._waiting_by_key[key]
        if waiting:
            return waiting.popleft()
        del self._waiting_by_key[key]
        return None

    def _signal_room(self) -> None:
        room = self._room
        if room is not None and not room.done() and self._in_flight <= self._resume_at:
            room.set_result(None)
        if self._in_flight == 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
