"""Dependency injection: how handler parameters get their values, and what is refused."""

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from dispytch import Dependency, Event, HandlerGroup, TopicSegment
from dispytch.errors import DependencyCycleError, HandlerRegistrationError
from tests.core import future_handlers
from tests.core.helpers import envelope, read_dead_letters, run_group


class Body(BaseModel):
    n: int


def msg(n: int, topic: str = "t") -> tuple[str, bytes]:
    return (topic, envelope("e", {"n": n}))


async def test_annotated_and_default_dependencies_sync_and_async() -> None:
    seen: list[tuple[int, int]] = []

    def sync_dep() -> int:
        return 1

    async def async_dep() -> int:
        return 2

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(
        a: Annotated[int, Dependency(sync_dep)], b: int = Dependency(async_dep)
    ) -> None:
        seen.append((a, b))

    await run_group(group, [msg(1)])
    assert seen == [(1, 2)]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("fail", [False, True])
async def test_generator_teardown_runs_after_handler_and_sees_its_error(
    kind: str, fail: bool
) -> None:
    log: list[str] = []

    def sync_tx() -> Iterator[str]:
        log.append("begin")
        try:
            yield "tx"
        except Exception as exc:
            log.append(f"rollback {type(exc).__name__}")
            raise
        else:
            log.append("commit")

    async def async_tx() -> AsyncIterator[str]:
        log.append("begin")
        try:
            yield "tx"
        except Exception as exc:
            log.append(f"rollback {type(exc).__name__}")
            raise
        else:
            log.append("commit")

    dep = sync_tx if kind == "sync" else async_tx
    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(tx: Annotated[str, Dependency(dep)]) -> None:
        log.append(f"handler {tx}")
        if fail:
            raise ValueError("boom")

    broker = await run_group(group, [msg(1)])
    if fail:
        assert log == ["begin", "handler tx", "rollback ValueError"]
        [(_, _, reason)] = await read_dead_letters(broker, "t", 1)
        assert reason.error_type == "ValueError"
    else:
        assert log == ["begin", "handler tx", "commit"]
        assert broker.backlog("t.dlq") == 0


async def test_contextmanager_decorated_dependency_is_entered_and_exited() -> None:
    log: list[str] = []

    @contextlib.contextmanager
    def resource() -> Iterator[str]:
        log.append("enter")
        yield "res"
        log.append("exit")

    @contextlib.asynccontextmanager
    async def async_resource() -> AsyncIterator[str]:
        log.append("aenter")
        yield "ares"
        log.append("aexit")

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(
        r: Annotated[str, Dependency(resource)], ar: Annotated[str, Dependency(async_resource)]
    ) -> None:
        log.append(f"handler {r} {ar}")

    await run_group(group, [msg(1)])
    assert log[:3] == ["enter", "aenter", "handler res ares"]
    assert sorted(log[3:]) == ["aexit", "exit"]


@pytest.mark.parametrize("use_cache", [True, False])
async def test_function_returning_a_contextmanager_object_is_called_once_per_event(
    use_cache: bool,
) -> None:
    log: list[str] = []

    @contextlib.contextmanager
    def connection() -> Iterator[str]:
        log.append("connect")
        yield "conn"
        log.append("disconnect")

    def get_connection() -> Any:  # a plain function: only its result says "enter me"
        log.append("get")
        return connection()

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(
        conn: Annotated[str, Dependency(get_connection, use_cache=use_cache)],
    ) -> None:
        log.append(f"handler {conn}")

    await run_group(group, [msg(1)])
    await run_group(group, [msg(2)])
    cycle = ["get", "connect", "handler conn", "disconnect"]
    assert log == cycle + cycle


async def test_enter_context_enters_the_returned_context_manager() -> None:
    log: list[str] = []

    class Session:
        def __enter__(self) -> str:
            log.append("enter")
            return "session"

        def __exit__(self, *exc_info: object) -> None:
            log.append(f"exit {exc_info[0].__name__ if exc_info[0] else None}")

    class AsyncSession:
        async def __aenter__(self) -> str:
            log.append("aenter")
            return "asession"

        async def __aexit__(self, *exc_info: object) -> None:
            log.append("aexit")

    def make_session() -> Session:
        return Session()

    async def make_async_session() -> AsyncSession:
        return AsyncSession()

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(
        s: Annotated[str, Dependency(make_session, enter_context=True)],
        a: Annotated[str, Dependency(make_async_session, enter_context=True)],
    ) -> None:
        log.append(f"handler {s} {a}")

    await run_group(group, [msg(1)])
    assert log[:3] == ["enter", "aenter", "handler session asession"]
    assert sorted(log[3:]) == ["aexit", "exit None"]


async def test_without_enter_context_the_object_itself_is_injected() -> None:
    seen: list[Any] = []

    class Session:
        def __enter__(self) -> str:
            raise AssertionError("must not be entered")

        def __exit__(self, *exc_info: object) -> None: ...

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(s: Annotated[Session, Dependency(Session)]) -> None:
        seen.append(s)

    await run_group(group, [msg(1)])
    assert len(seen) == 1
    assert isinstance(seen[0], Session)


async def test_nested_dependencies_with_event_segment_and_other_dependencies() -> None:
    seen: list[Any] = []
    calls: list[str] = []

    def get_db() -> dict[int, str]:
        calls.append("db")
        return {7: "ada", 8: "bob"}

    def current_user(
        event: Event[Body],
        user_id: Annotated[int, TopicSegment()],
        db: Annotated[dict[int, str], Dependency(get_db)],
    ) -> str:
        return f"{db[user_id]}#{event.body.n}"

    async def greeting(
        user: Annotated[str, Dependency(current_user)],
        region: Annotated[str, TopicSegment("region")],
    ) -> str:
        return f"hello {user} from {region}"

    group = HandlerGroup()

    @group.handler(topic="users:{region}:{user_id}", event="e")
    async def handler(
        text: Annotated[str, Dependency(greeting)],
        db: Annotated[dict[int, str], Dependency(get_db)],
        user_id: int,
    ) -> None:
        seen.append((text, sorted(db), user_id))

    await run_group(group, [msg(3, "users:eu:7"), msg(4, "users:us:8")])
    assert sorted(seen) == [
        ("hello ada#3 from eu", [7, 8], 7),
        ("hello bob#4 from us", [7, 8], 8),
    ]
    assert calls == ["db", "db"]  # once per event, though two parameters need it


async def test_cached_per_event_and_use_cache_false() -> None:
    cached_calls = 0
    uncached_calls = 0
    seen: list[tuple[int, int, int, int]] = []

    def cached() -> int:
        nonlocal cached_calls
        cached_calls += 1
        return cached_calls

    def uncached() -> int:
        nonlocal uncached_calls
        uncached_calls += 1
        return uncached_calls

    def uses_both(
        c: Annotated[int, Dependency(cached)],
        u: Annotated[int, Dependency(uncached, use_cache=False)],
    ) -> tuple[int, int]:
        return c, u

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(
        pair: Annotated[tuple[int, int], Dependency(uses_both)],
        c: Annotated[int, Dependency(cached)],
        u: int = Dependency(uncached, use_cache=False),
    ) -> None:
        seen.append((pair[0], c, pair[1], u))

    await run_group(group, [msg(1)])
    assert seen == [(1, 1, 1, 2)]
    assert (cached_calls, uncached_calls) == (1, 2)

    await run_group(group, [msg(2)])  # the next event calls the cached dependency again
    assert (cached_calls, uncached_calls) == (2, 4)


async def test_class_as_dependency_and_dependency_without_function() -> None:
    seen: list[Any] = []

    class Repo:
        def __init__(self) -> None:
            self.name = "repo"

    class Service:
        def __init__(self, repo: Annotated[Repo, Dependency()], event: Event[Body]) -> None:
            self.repo = repo
            self.n = event.body.n

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(
        service: Annotated[Service, Dependency(Service)], repo: Repo = Dependency()
    ) -> None:
        seen.append((type(service).__name__, service.repo is repo, repo.name, service.n))

    await run_group(group, [msg(5)])
    assert seen == [("Service", True, "repo", 5)]


async def test_future_annotations_module_level_handler() -> None:
    future_handlers.LEDGER.entries.clear()
    body = {"order_id": 12, "amount": 9.5}
    await run_group(
        future_handlers.module_group, [("orders:eu", envelope("order_placed", body))]
    )
    assert future_handlers.LEDGER.entries == ["begin", ("eu", 12, 9.5, "tx"), "commit"]


async def test_future_annotations_handler_inside_a_function_with_local_classes() -> None:
    seen: list[Any] = []
    group = future_handlers.make_local_group(seen)
    await run_group(group, [("notes:3", envelope("note", {"text": "hi"}))])
    assert seen == [("LocalBody", "HI!!!")]


# -- registration errors ------------------------------------------------------------------------


# string annotations, evaluated at registration, let the two functions name each other
def cycle_a(b: "Annotated[int, Dependency(cycle_b)]") -> int:
    return b


def cycle_b(a: "Annotated[int, Dependency(cycle_a)]") -> int:
    return a


def test_dependency_cycle_is_refused_at_registration() -> None:
    group = HandlerGroup()
    with pytest.raises(DependencyCycleError) as caught:

        @group.handler(topic="t", event="e")
        async def cyclic_handler(x: Annotated[int, Dependency(cycle_a)]) -> None: ...

    message = str(caught.value)
    assert "cyclic_handler" in message
    assert "cycle_a" in message
    assert "cycle_b" in message
    assert group.handlers == []


def test_unresolvable_parameter_is_refused() -> None:
    group = HandlerGroup()
    with pytest.raises(HandlerRegistrationError) as caught:

        @group.handler(topic="t", event="e")
        async def odd_handler(event: Event[Body], mystery: int) -> None: ...

    assert "odd_handler" in str(caught.value)
    assert "mystery" in str(caught.value)
    assert group.handlers == []


def test_unresolvable_parameter_of_a_dependency_is_refused() -> None:
    def needs_mystery(mystery: int) -> int:
        return mystery

    group = HandlerGroup()
    with pytest.raises(HandlerRegistrationError) as caught:

        @group.handler(topic="t", event="e")
        async def dep_handler(x: Annotated[int, Dependency(needs_mystery)]) -> None: ...

    assert "dep_handler" in str(caught.value)
    assert "needs_mystery" in str(caught.value)
    assert "mystery" in str(caught.value)


def test_topic_segment_missing_from_pattern_is_refused() -> None:
    group = HandlerGroup()
    with pytest.raises(HandlerRegistrationError) as caught:

        @group.handler(topic="users:{user_id}", event="e")
        async def seg_handler(account: Annotated[int, TopicSegment()]) -> None: ...

    assert "seg_handler" in str(caught.value)
    assert "account" in str(caught.value)


def test_event_body_must_be_a_model() -> None:
    group = HandlerGroup()
    with pytest.raises(HandlerRegistrationError) as caught:

        @group.handler(topic="t", event="e")
        async def int_handler(event: Event[int]) -> None: ...

    assert "int_handler" in str(caught.value)
    assert "event" in str(caught.value)


def test_sync_handler_is_refused() -> None:
    group = HandlerGroup()
    with pytest.raises(HandlerRegistrationError) as caught:

        @group.handler(topic="t", event="e")
        def sync_handler(event: Event[Body]) -> None: ...

    assert "sync_handler" in str(caught.value)
    assert "async" in str(caught.value)
    assert group.handlers == []


def test_unresolvable_annotation_is_refused_at_registration() -> None:
    group = HandlerGroup()
    with pytest.raises(HandlerRegistrationError) as caught:

        @group.handler(topic="t", event="e")
        async def ghost_handler(event: "Event[NoSuchModel]") -> None: ...  # type: ignore[name-defined] # noqa: F821

    assert "ghost_handler" in str(caught.value)
