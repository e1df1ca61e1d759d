"""Retries: which errors, how long between, attempts, and what ends in the dead-letter topic."""

import asyncio
import itertools
import json
import time
from typing import Any

import pytest
from pydantic import BaseModel

from dispytch import (
    Event,
    EventListener,
    ExponentialBackoff,
    FixedBackoff,
    HandlerGroup,
    InMemoryBroker,
    RetryPolicy,
)
from dispytch.reasons import ATTEMPT_HEADER
from dispytch.retrying import Retrier
from tests.core.helpers import envelope, publish_raw, read_dead_letters, run_group, wait_until


class Body(BaseModel):
    n: int


class Transient(Exception):
    pass


async def test_retried_until_success() -> None:
    attempts: list[int] = []
    group = HandlerGroup()

    @group.handler(topic="t", event="e", retries=3, retry_on=Transient, retry_interval=0)
    async def handler(event: Event[Body]) -> None:
        attempts.append(event.attempt)
        if event.attempt < 3:
            raise Transient(f"try {event.attempt}")

    broker = await run_group(group, [("t", envelope("e", {"n": 1}))])
    assert attempts == [1, 2, 3]
    assert broker.backlog("t.dlq") == 0


async def test_the_first_attempt_of_an_only_handler_reaches_the_retry_layer_only_on_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path of `Dispatcher.handle`: the first attempt of a message's only handler is
    made in place; the retry layer (`Retrier.run`) is entered with its failure, and retries
    from there as if it had made that attempt itself."""
    entered: list[tuple[int, str | None]] = []
    run = Retrier.run

    async def counted(self: Retrier, *args: Any) -> Any:
        failed = args[5] if len(args) > 5 else None
        entered.append((args[4], None if failed is None else type(failed).__name__))
        return await run(self, *args)

    monkeypatch.setattr(Retrier, "run", counted)
    attempts: list[int] = []
    group = HandlerGroup()

    @group.handler(topic="t", event="e", retries=2, retry_on=Transient, retry_interval=0)
    async def handler(event: Event[Body]) -> None:
        attempts.append(event.attempt)
        if event.body.n == 2 and event.attempt < 3:
            raise Transient(f"try {event.attempt}")

    messages = [("t", envelope("e", {"n": 1})), ("t", envelope("e", {"n": 2}))]
    broker = await run_group(group, messages)
    assert sorted(attempts) == [1, 1, 2, 3]
    assert entered == [(1, "Transient")], "entered once, by the failure of attempt 1"
    assert broker.backlog("t.dlq") == 0


@pytest.mark.parametrize("retry_on", [KeyError, (KeyError, Transient), [Transient]])
async def test_error_not_in_retry_on_is_not_retried(retry_on: Any) -> None:
    attempts: list[int] = []
    group = HandlerGroup()

    @group.handler(topic="t", event="e", retries=5, retry_on=retry_on, retry_interval=0)
    async def handler(event: Event[Body]) -> None:
        attempts.append(event.attempt)
        raise TypeError("not worth retrying")

    broker = await run_group(group, [("t", envelope("e", {"n": 1}))])
    assert attempts == [1]
    [(_, _, reason)] = await read_dead_letters(broker, "t", 1)
    assert reason.error_type == "TypeError"
    assert reason.attempts == 1


async def test_listed_error_in_a_sequence_is_retried() -> None:
    attempts: list[int] = []
    group = HandlerGroup()

    @group.handler(
        topic="t", event="e", retries=2, retry_on=[KeyError, Transient], retry_interval=0
    )
    async def handler(event: Event[Body]) -> None:
        attempts.append(event.attempt)
        raise Transient("again")

    await run_group(group, [("t", envelope("e", {"n": 1}))])
    assert attempts == [1, 2, 3]


async def test_fixed_retry_interval_is_waited() -> None:
    times: list[float] = []
    group = HandlerGroup()

    @group.handler(topic="t", event="e", retries=2, retry_interval=0.05)
    async def handler(event: Event[Body]) -> None:
        times.append(time.monotonic())
        if len(times) < 3:
            raise Transient("again")

    await run_group(group, [("t", envelope("e", {"n": 1}))])
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.045 for gap in gaps), gaps
    assert all(gap < 1.0 for gap in gaps), gaps


async def test_exponential_backoff_in_a_handler() -> None:
    times: list[float] = []
    group = HandlerGroup()
    backoff = ExponentialBackoff(initial=0.02, multiplier=3, max_delay=1.0, jitter=False)

    @group.handler(topic="t", event="e", retries=2, backoff=backoff)
    async def handler(event: Event[Body]) -> None:
        times.append(time.monotonic())
        raise Transient("again")

    await run_group(group, [("t", envelope("e", {"n": 1}))])
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2
    assert 0.018 <= gaps[0] < 0.5
    assert 0.058 <= gaps[1] < 0.6  # 0.02 * 3


def test_exponential_backoff_without_jitter() -> None:
    backoff = ExponentialBackoff(initial=0.1, multiplier=2, max_delay=0.3, jitter=False)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 50)] == pytest.approx(
        [0.1, 0.2, 0.3, 0.3, 0.3]
    )


def test_exponential_backoff_with_jitter_stays_within_bounds() -> None:
    backoff = ExponentialBackoff(initial=0.1, multiplier=2, max_delay=0.3, jitter=True)
    for attempt, ceiling in ((1, 0.1), (2, 0.2), (3, 0.3), (20, 0.3)):
        delays = [backoff.delay(attempt) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # random, not a constant
        assert min(delays) < ceiling / 2 < max(delays)


def test_fixed_backoff_and_policy_building() -> None:
    assert FixedBackoff(0.5).delay(1) == FixedBackoff(0.5).delay(9) == 0.5
    policy = RetryPolicy.build(retries=2, retry_on=KeyError, retry_interval=0.25)
    assert policy.retry_on == (KeyError,)
    assert policy.delay(1) == 0.25
    assert policy.should_retry(KeyError("x"), 1)
    assert policy.should_retry(KeyError("x"), 2)
    assert not policy.should_retry(KeyError("x"), 3)
    assert not policy.should_retry(ValueError("x"), 1)
    with pytest.raises(ValueError):
        RetryPolicy.build(retry_interval=1.0, backoff=FixedBackoff(1.0))
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(TypeError):
        RetryPolicy.build(retries=1, retry_on=[KeyError, "nope"])  # type: ignore[list-item]


async def test_final_failure_is_dead_lettered_with_the_reason() -> None:
    group = HandlerGroup()
    raw = envelope("order_placed", {"n": 1}, event_id="evt-1")

    @group.handler(topic="orders", event="order_placed", retries=2, retry_interval=0)
    async def charge(event: Event[Body]) -> None:
        raise Transient(f"card declined on attempt {event.attempt}")

    broker = await run_group(group, [("orders", raw)])
    [(value, headers, reason)] = await read_dead_letters(broker, "orders", 1)
    assert value == raw  # the original bytes, untouched
    assert reason.stage == "handler"
    assert reason.error_type == "Transient"
    assert reason.error_message == "card declined on attempt 3"
    assert reason.attempts == 3
    assert reason.original_topic == "orders"
    assert reason.handler is not None
    assert reason.handler.endswith("charge")
    assert reason.event_id == "evt-1"
    assert reason.event_type == "order_placed"
    assert headers["dispytch-dlq-attempts"] == "3"
    assert broker.pending("g") == 0


@pytest.mark.parametrize("body", [{"n": "not a number"}, {}, [1, 2], "text"])
async def test_invalid_body_is_dead_lettered_at_once_without_retry(body: Any) -> None:
    calls: list[Any] = []
    group = HandlerGroup()

    @group.handler(topic="t", event="e", retries=5, retry_interval=0)
    async def handler(event: Event[Body]) -> None:
        calls.append(event.body)

    broker = await run_group(group, [("t", envelope("e", body))])
    assert calls == []
    [(value, _, reason)] = await read_dead_letters(broker, "t", 1)
    assert json.loads(value)["body"] == body
    assert reason.stage == "validation"
    assert reason.attempts == 1
    assert reason.error_type == "ValidationError"


async def test_attempt_header_is_honoured() -> None:
    attempts: list[int] = []
    group = HandlerGroup()

    @group.handler(topic="t", event="e", retries=3, retry_interval=0)
    async def handler(event: Event[Body]) -> None:
        attempts.append(event.attempt)
        raise Transient("again")

    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    listener.add_handler_group(group)
    async with listener:
        await publish_raw(
            broker, "t", envelope("e", {"n": 1}), headers={ATTEMPT_HEADER: "2"}
        )
        await wait_until(lambda: broker.pending("g") == 0)
    # two attempts happened before; of the 1 + 3 allowed, attempts 3 and 4 remain
    assert attempts == [3, 4]
    [(_, _, reason)] = await read_dead_letters(broker, "t", 1)
    assert reason.attempts == 4


async def test_retryable_failure_during_shutdown_is_not_dead_lettered() -> None:
    broker = InMemoryBroker()
    failing = EventListener(broker.consumer("g"), shutdown_grace=2.0)
    started = asyncio.Event()
    proceed = asyncio.Event()

    @failing.handler(topic="t", event="e", retries=3, retry_interval=0)
    async def flaky(event: Event[Body]) -> None:
        started.set()
        await proceed.wait()
        raise Transient("database restarting")

    async with failing:
        await publish_raw(broker, "t", envelope("e", {"n": 1}))
        await asyncio.wait_for(started.wait(), 2)
        stopping = asyncio.create_task(failing.stop())
        await asyncio.sleep(0)  # stop() asks for the stop in its first step
        proceed.set()
        await asyncio.wait_for(stopping, 3)

    # either retried in place within the grace period, or left for redelivery; never lost
    # to the dead-letter topic while retries remain
    assert broker.backlog("t.dlq") == 0
