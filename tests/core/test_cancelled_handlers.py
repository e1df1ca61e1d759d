"""A `CancelledError` from handler code is a failure of that handler, not the listener's stop.

A handler gets one whenever it awaits a task or future that someone else cancelled. It must be
retried and dead-lettered like any other failure, and neither the worker, its place in
`max_concurrency` nor the message's key may be lost. Only the listener's own shutdown (the pool
cancelling its workers after the grace period) leaves a message unsettled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from dispytch import Event, EventListener, InMemoryBroker
from dispytch.backends.base import Delivery
from dispytch.dispatch import DEAD_LETTER_RETRY_DELAY
from dispytch.scheduling import OrderedWorkerPool

from .helpers import (
    WAIT,
    ScriptedConsumer,
    ScriptedDelivery,
    envelope,
    publish_raw,
    read_dead_letters,
    wait_until,
)


class Body(BaseModel):
    n: int


async def _await_a_cancelled_future() -> None:
    cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cancelled.cancel()
    await cancelled


async def test_cancelled_error_is_retried_then_dead_lettered_and_the_key_goes_on() -> None:
    broker = InMemoryBroker()
    # one worker: a worker that died with the first event would leave none for the others
    listener = EventListener(broker.consumer("g"), max_concurrency=1, shutdown_grace=60.0)
    attempts: list[int] = []
    handled: list[int] = []

    @listener.handler(topic="t", event="e", retries=2, retry_interval=0.01)
    async def handler(event: Event[Body]) -> None:
        if event.body.n == 0:
            attempts.append(event.attempt)
            await _await_a_cancelled_future()
        handled.append(event.body.n)

    async with listener:
        for n in range(5):
            await publish_raw(broker, "t", envelope("e", {"n": n}), key=b"same")
        letters = await read_dead_letters(broker, "t", 1)
        await wait_until(lambda: handled == [1, 2, 3, 4], what="the same key going on")
        # bounded far below the grace period: nothing is left running
        await asyncio.wait_for(listener.stop(), WAIT)
    assert attempts == [1, 2, 3]
    _, _, reason = letters[0]
    assert (reason.stage, reason.error_type, reason.attempts) == ("handler", "CancelledError", 3)
    assert broker.pending("g") == 0


async def test_a_handler_cancelled_from_outside_its_task_is_a_failure_too() -> None:
    """Something cancels the worker task itself (a watchdog holding `current_task()`): that is
    not the listener's stop either, and the worker goes on with the next event."""
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), max_concurrency=1, shutdown_grace=60.0)
    handled: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        if event.body.n == 0:
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().call_soon(task.cancel)
            await asyncio.sleep(WAIT * 10)
        await asyncio.sleep(0)  # a later await must not see a stale cancel request
        handled.append(event.body.n)

    async with listener:
        for n in range(3):
            await publish_raw(broker, "t", envelope("e", {"n": n}))
        letters = await read_dead_letters(broker, "t", 1)
        await wait_until(lambda: handled == [1, 2], what="the worker going on")
        await asyncio.wait_for(listener.stop(), WAIT)
    assert letters[0][2].error_type == "CancelledError"


async def test_the_listeners_own_shutdown_still_leaves_a_stuck_handler_unsettled() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=0.1)
    started = asyncio.Event()

    @listener.handler(topic="t", event="e", retries=3, retry_interval=0.01)
    async def forever(event: Event[Body]) -> None:
        started.set()
        await asyncio.Event().wait()

    async with listener:
        await publish_raw(broker, "t", envelope("e", {"n": 1}))
        await asyncio.wait_for(started.wait(), WAIT)
    assert broker.pending("g") == 1  # cancelled by the stop: neither retried nor settled
    assert broker.backlog("t.dlq") == 0


async def test_several_handlers_a_cancelled_one_waits_for_its_siblings_then_dead_letters() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=60.0)
    release = asyncio.Event()
    sibling_finished: list[bool] = []
    failed = asyncio.Event()

    @listener.handler(topic="t", event="e")
    async def cancelled(event: Event[Body]) -> None:
        failed.set()
        await _await_a_cancelled_future()

    @listener.handler(topic="t", event="e")
    async def slow(event: Event[Body]) -> None:
        await release.wait()
        sibling_finished.append(True)

    async with listener:
        await publish_raw(broker, "t", envelope("e", {"n": 1}))
        await asyncio.wait_for(failed.wait(), WAIT)
        for _ in range(20):  # the failed handler must not settle the message on its own
            await asyncio.sleep(0)
        assert broker.backlog("t.dlq") == 0
        assert broker.pending("g") == 1
        release.set()
        letters = await read_dead_letters(broker, "t", 1)
        await wait_until(lambda: broker.pending("g") == 0, what="the message settled")
        await asyncio.wait_for(listener.stop(), WAIT)
    assert sibling_finished == [True]  # not cancelled because its sibling failed
    assert letters[0][2].error_type == "CancelledError"
    assert "cancelled" in (letters[0][2].handler or "")


class _CancelledSettle(ScriptedDelivery):
    """A delivery whose backend raises CancelledError from ack and dead_letter (aiormq does,
    for a channel the broker closed)."""

    async def ack(self) -> None:
        self.outcomes.append("ack")
        await _await_a_cancelled_future()

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        self.outcomes.append("dead_letter")
        await _await_a_cancelled_future()


async def test_a_cancelled_error_from_settling_keeps_the_worker_and_the_key() -> None:
    acked = _CancelledSettle("t", envelope("e", {"n": 1}), ordering_key="k")
    dead = _CancelledSettle("t", envelope("e", {"n": 2}), ordering_key="k")
    after = ScriptedDelivery("t", envelope("e", {"n": 3}), ordering_key="k")
    consumer = ScriptedConsumer([acked, dead, after])
    listener = EventListener(consumer, max_concurrency=1, shutdown_grace=60.0)
    handled: list[int] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        handled.append(event.body.n)
        if event.body.n == 2:
            raise ValueError("to the dead letters")

    async with listener:
        # the failed dead letter is given back after DEAD_LETTER_RETRY_DELAY
        await wait_until(
            lambda: after.outcomes == ["ack"],
            timeout=DEAD_LETTER_RETRY_DELAY + WAIT,
            what="the next delivery of the key",
        )
        await asyncio.wait_for(listener.stop(), WAIT)
    assert handled == [1, 2, 3]
    assert acked.outcomes == ["ack"]  # a failed ack: left to the broker, as any failed ack
    assert dead.outcomes == ["dead_letter", "nack"]  # a failed dead letter: given back


async def test_the_pool_survives_a_cancelled_error_that_escapes_the_dispatcher() -> None:
    """The worker's last guard: whatever escapes, the delivery is nacked and the worker, its
    place and the key are released."""
    first = ScriptedDelivery("t", b"1", ordering_key="k")
    second = ScriptedDelivery("t", b"2", ordering_key="k")
    handled: list[bytes] = []

    async def handle(delivery: Delivery) -> None:
        handled.append(delivery.value)
        if delivery is first:
            await _await_a_cancelled_future()
        await delivery.ack()

    pool = OrderedWorkerPool(handle, 1)
    try:
        for delivery in (first, second):
            await pool.wait_for_room()
            pool.submit(delivery)
        assert await pool.drain(WAIT)
    finally:
        await pool.close()
    assert handled == [b"1", b"2"]
    assert (first.outcomes, second.outcomes) == (["nack"], ["ack"])
    assert pool.in_flight == 0


class _CancelledOnceConsumer(ScriptedConsumer):
    """`receive()` raises a CancelledError that is not the listener's stop, once."""

    def __init__(self, deliveries: Sequence[ScriptedDelivery]) -> None:
        super().__init__(deliveries)
        self.raised = False

    async def receive(self) -> Delivery:
        if not self.raised:
            self.raised = True
            await _await_a_cancelled_future()
        return await super().receive()


async def test_a_cancelled_error_from_the_consumer_does_not_stop_the_listener() -> None:
    delivery = ScriptedDelivery("t", envelope("e", {"n": 1}))
    consumer = _CancelledOnceConsumer([delivery])
    listener = EventListener(consumer)

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        pass

    async with listener:
        await wait_until(lambda: delivery.outcomes == ["ack"], timeout=WAIT * 2)
        assert listener.running
        await asyncio.wait_for(listener.stop(), WAIT)
    assert consumer.raised


async def test_many_cancelled_handlers_on_a_small_pool_settle_every_event() -> None:
    """Many cancelled handlers in a row on a small pool: every event is settled."""
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), max_concurrency=2, shutdown_grace=60.0)
    seen: list[Any] = []

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        seen.append(event.body.n)
        if event.body.n % 2:
            await _await_a_cancelled_future()

    async with listener:
        for n in range(20):
            await publish_raw(broker, "t", envelope("e", {"n": n}), key=str(n % 3).encode())
        await wait_until(lambda: broker.pending("g") == 0, what="every event settled")
        await asyncio.wait_for(listener.stop(), WAIT)
    assert sorted(seen) == list(range(20))
    assert broker.backlog("t.dlq") == 10


class _CancelledStopConsumer(ScriptedConsumer):
    """`stop()` raises the CancelledError of a client's future (aiormq does that when the
    broker closed the channel under it)."""

    async def stop(self) -> None:
        await super().stop()
        await _await_a_cancelled_future()


async def test_a_cancelled_error_from_stopping_the_consumer_does_not_cut_the_shutdown_short() -> (
    None
):
    delivery = ScriptedDelivery("t", envelope("e", {"n": 1}))
    consumer = _CancelledStopConsumer([delivery])
    listener = EventListener(consumer, shutdown_grace=60.0)

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        pass

    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await wait_until(lambda: delivery.outcomes == ["ack"])
    await asyncio.wait_for(listener.stop(), WAIT)
    await asyncio.wait_for(listening, WAIT)  # returns: the stop was not taken for a cancel
    assert consumer.closed
    assert not listener.running


@pytest.mark.parametrize("worker_first", [True, False])
async def test_a_program_ending_under_a_running_handler_gives_its_message_back(
    worker_first: bool,
) -> None:
    """When `asyncio.run` returns with the listener still running, it cancels every task at
    once, the worker and `listen()` alike, in any order: the handler's CancelledError is then
    the stop, and the message goes back to the broker instead of to the dead letters."""
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=60.0)
    workers: list[asyncio.Task[Any]] = []
    started = asyncio.Event()

    @listener.handler(topic="t", event="e")
    async def handler(event: Event[Body]) -> None:
        task = asyncio.current_task()
        assert task is not None
        workers.append(task)
        started.set()
        await asyncio.sleep(WAIT * 10)

    listening = asyncio.create_task(listener.listen(handle_signals=False))
    await publish_raw(broker, "t", envelope("e", {"n": 1}))
    await asyncio.wait_for(started.wait(), WAIT)
    together = [workers[0], listening] if worker_first else [listening, workers[0]]
    for task in together:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(listening, WAIT)
    assert broker.backlog("t.dlq") == 0
    assert broker.pending("g") == 1  # given back: the next consumer of the group gets it
