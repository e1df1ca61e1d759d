"""Dependency rules decided in issue 20: failing teardowns, the cache's scope, blocking calls."""

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import pytest
from pydantic import BaseModel

from dispytch import Dependency, Event, EventListener, HandlerGroup, InMemoryBroker
from dispytch.errors import HandlerRegistrationError
from tests.core.helpers import envelope, publish_raw, read_dead_letters, run_group, wait_until


class Body(BaseModel):
    n: int


def msg(n: int, topic: str = "t") -> tuple[str, bytes]:
    return (topic, envelope("e", {"n": n}))


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_failing_teardown_does_not_hide_the_handlers_error(kind: str) -> None:
    def sync_session() -> Iterator[str]:
        try:
            yield "session"
        except Exception:
            raise ConnectionError("rollback failed") from None

    async def async_session() -> AsyncIterator[str]:
        try:
            yield "session"
        except Exception:
            raise ConnectionError("rollback failed") from None

    group = HandlerGroup()
    attempts: list[int] = []

    @group.handler(topic="t", event="e", retries=1, retry_on=ValueError, retry_interval=0.01)
    async def handler(
        event: Event[Body],
        session: Annotated[str, Dependency(sync_session if kind == "sync" else async_session)],
    ) -> None:
        attempts.append(event.attempt)
        raise ValueError("no stock")

    broker = await run_group(group, [msg(1)])
    # the handler's ValueError stays the failure: retried under retry_on=ValueError ...
    assert attempts == [1, 2]
    [(_, _, reason)] = await read_dead_letters(broker, "t", 1)
    # ... and named in the dead letter, with the teardown's error noted
    assert reason.error_type == "ValueError"
    assert reason.error_message.startswith("no stock")
    assert "teardown failed: ConnectionError: rollback failed" in reason.error_message
    assert reason.attempts == 2


async def test_a_teardown_failing_after_success_fails_the_call_and_is_retried() -> None:
    """Kept: a teardown is part of handling (it may commit the handler's work)."""
    commits: list[str] = []
    calls: list[int] = []

    async def transaction() -> AsyncIterator[None]:
        yield
        if len(commits) == 0:
            commits.append("failed")
            raise ConnectionError("commit failed")
        commits.append("committed")

    group = HandlerGroup()

    @group.handler(topic="t", event="e", retries=1, retry_interval=0.01)
    async def handler(event: Event[Body], _tx: Annotated[None, Dependency(transaction)]) -> None:
        calls.append(event.attempt)

    broker = await run_group(group, [msg(1)])
    assert calls == [1, 2]  # run again, in a new transaction
    assert commits == ["failed", "committed"]
    assert broker.backlog("t.dlq") == 0


async def test_a_teardown_failing_after_success_without_retries_dead_letters() -> None:
    async def transaction() -> AsyncIterator[None]:
        yield
        raise ConnectionError("commit failed")

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(event: Event[Body], _tx: Annotated[None, Dependency(transaction)]) -> None:
        pass

    broker = await run_group(group, [msg(1)])
    [(_, _, reason)] = await read_dead_letters(broker, "t", 1)
    assert reason.stage == "handler"
    assert reason.error_type == "ConnectionError"


async def test_use_cache_is_per_handler_call_not_per_message() -> None:
    made: list[int] = []

    def counter() -> int:
        made.append(len(made))
        return made[-1]

    def uses_counter(value: Annotated[int, Dependency(counter)]) -> int:
        return value

    group = HandlerGroup(default_topic="t", default_event="e")
    seen: dict[str, list[tuple[int, int, int]]] = {"first": [], "second": []}

    def record(name: str):  # type: ignore[no-untyped-def]
        async def handler(
            event: Event[Body],
            direct: Annotated[int, Dependency(counter)],
            nested: Annotated[int, Dependency(uses_counter)],
        ) -> None:
            seen[name].append((event.attempt, direct, nested))
            if name == "second" and event.attempt == 1:
                raise ValueError("once")

        return handler

    group.handler(name="first")(record("first"))
    group.handler(name="second", retries=1, retry_interval=0.01)(record("second"))
    await run_group(group, [msg(1)])
    # one value per handler call: shared inside it, not between the two handlers of the
    # message, and a new one for the retry
    assert len(made) == 3
    (first,) = seen["first"]
    assert first[1] == first[2]
    second_first_try, second_retry = seen["second"]
    assert second_first_try[1] == second_first_try[2]
    assert second_retry[1] == second_retry[2]
    assert len({first[1], second_first_try[1], second_retry[1]}) == 3


async def test_run_in_thread_keeps_the_event_loop_free() -> None:
    loop_thread = threading.get_ident()
    released = threading.Event()
    threads: dict[str, int] = {}

    def blocking_lookup() -> str:
        threads["call"] = threading.get_ident()
        # on the loop's thread this would wait for a task the blocked loop can never run
        if not released.wait(timeout=5):
            raise TimeoutError("the event loop was blocked")
        return "found"

    def blocking_session() -> Iterator[str]:
        threads["setup"] = threading.get_ident()
        yield "session"
        threads["teardown"] = threading.get_ident()

    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    results: list[str] = []

    @listener.handler(topic="t", event="e")
    async def handler(
        found: Annotated[str, Dependency(blocking_lookup, run_in_thread=True)],
        session: Annotated[str, Dependency(blocking_session, run_in_thread=True)],
    ) -> None:
        results.append(f"{found} {session}")

    async def release_soon() -> None:
        await wait_until(lambda: "call" in threads)
        released.set()

    async with listener:
        await publish_raw(broker, "t", envelope("e", {"n": 1}))
        await asyncio.wait_for(release_soon(), 5)
        await wait_until(lambda: broker.pending("g") == 0)
    assert results == ["found session"]
    assert loop_thread not in threads.values()


def test_run_in_thread_is_refused_for_async_dependencies() -> None:
    async def fetch() -> int:
        return 1

    group = HandlerGroup(default_topic="t", default_event="e")
    with pytest.raises(HandlerRegistrationError, match="run_in_thread"):

        @group.handler()
        async def handler(value: Annotated[int, Dependency(fetch, run_in_thread=True)]) -> None:
            pass


async def test_a_teardown_failing_under_cancellation_does_not_turn_it_into_a_failure() -> None:
    """A handler cancelled at the end of the grace period leaves its message unsettled, to be
    delivered again, even when a teardown raises on the way out: never dead-lettered."""
    started = asyncio.Event()

    async def session() -> AsyncIterator[None]:
        try:
            yield
        except BaseException:
            raise ConnectionError("rollback failed") from None

    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=0.05)

    @listener.handler(topic="t", event="e")
    async def handler(_s: Annotated[None, Dependency(session)]) -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    async def run() -> None:
        async with listener:
            await publish_raw(broker, "t", envelope("e", {"n": 1}))
            await asyncio.wait_for(started.wait(), 5)

    await asyncio.wait_for(run(), 10)  # before: the shutdown never ended
    assert broker.backlog("t.dlq") == 0
    assert broker.pending("g") == 1  # given back when the consumer closed
