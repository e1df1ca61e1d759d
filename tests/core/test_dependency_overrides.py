"""`listener.dependency_overrides`: replace a dependency wherever it is used, undo it, and
keep every other listener (and the compiled plans they share) as they were."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from dispytch import Dependency, Event, EventListener, HandlerGroup, InMemoryBroker
from dispytch.errors import HandlerRegistrationError
from tests.core.helpers import envelope, publish_raw, wait_until

TOPIC = "users"


class Body(BaseModel):
    name: str


class Database:
    def __init__(self, label: str) -> None:
        self.label = label


def get_settings() -> str:
    return "production"


def get_database(settings: Annotated[str, Dependency(get_settings)]) -> Database:
    return Database(f"db for {settings}")


class UserService:
    def __init__(self, db: Annotated[Database, Dependency(get_database)]) -> None:
        self.db = db


seen: list[str] = []
group = HandlerGroup(default_topic=TOPIC)


@group.handler(event="user")
async def on_user(
    event: Event[Body], service: Annotated[UserService, Dependency(UserService)]
) -> None:
    seen.append(f"{event.body.name}: {service.db.label}")


async def _handle(listener: EventListener, broker: InMemoryBroker, *names: str) -> list[str]:
    seen.clear()
    async with listener:
        for name in names:
            await publish_raw(broker, TOPIC, envelope("user", {"name": name}))
        await wait_until(lambda: len(seen) == len(names), what="every event handled")
    return sorted(seen)


def _listener(broker: InMemoryBroker) -> EventListener:
    listener = EventListener(broker.consumer("g"))
    listener.add_handler_group(group)
    return listener


async def test_a_nested_dependency_is_overridden_in_an_already_compiled_plan() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    listener.dependency_overrides[get_settings] = lambda: "test"
    assert await _handle(listener, broker, "ada") == ["ada: db for test"]


async def test_an_override_may_have_dependencies_of_its_own() -> None:
    def fake_database(settings: Annotated[str, Dependency(get_settings)]) -> Database:
        return Database(f"fake for {settings}")

    broker = InMemoryBroker()
    listener = _listener(broker)
    listener.dependency_overrides[get_database] = fake_database
    assert await _handle(listener, broker, "ada") == ["ada: fake for production"]


async def test_a_generator_override_is_entered_and_torn_down() -> None:
    steps: list[str] = []

    async def fake_database() -> AsyncIterator[Database]:
        steps.append("open")
        yield Database("generated")
        steps.append("close")

    broker = InMemoryBroker()
    listener = _listener(broker)
    listener.dependency_overrides[get_database] = fake_database
    assert await _handle(listener, broker, "ada", "bob") == [
        "ada: generated",
        "bob: generated",
    ]
    assert steps == ["open", "close", "open", "close"]


async def test_overrides_are_undone_by_del_and_clear_and_apply_while_running() -> None:
    broker = InMemoryBroker()
    listener = _listener(broker)
    overrides = listener.dependency_overrides
    overrides[get_settings] = lambda: "one"
    assert await _handle(listener, broker, "a") == ["a: db for one"]
    del overrides[get_settings]
    assert await _handle(listener, broker, "b") == ["b: db for production"]
    overrides[get_settings] = lambda: "two"
    overrides.clear()
    assert await _handle(listener, broker, "c") == ["c: db for production"]

    seen.clear()
    async with listener:
        await publish_raw(broker, TOPIC, envelope("user", {"name": "d"}))
        await wait_until(lambda: len(seen) == 1, what="the first event")
        overrides[get_settings] = lambda: "live"
        await publish_raw(broker, TOPIC, envelope("user", {"name": "e"}))
        await wait_until(lambda: len(seen) == 2, what="the second event")
    assert seen == ["d: db for production", "e: db for live"]
    listener.dependency_overrides = {}
    assert dict(listener.dependency_overrides) == {}


async def test_overrides_belong_to_one_listener() -> None:
    broker = InMemoryBroker()
    overridden = _listener(broker)
    other = EventListener(broker.consumer("other"))
    other.add_handler_group(group)
    overridden.dependency_overrides[get_settings] = lambda: "test"
    assert await _handle(overridden, broker, "a") == ["a: db for test"]
    seen.clear()
    async with other:
        await publish_raw(broker, TOPIC, envelope("user", {"name": "b"}))
        await wait_until(lambda: len(seen) == 1, what="the event")
    assert seen == ["b: db for production"]


async def test_an_override_that_cannot_be_resolved_is_refused_where_it_is_set() -> None:
    def needs_something(unknown: Any) -> str:
        return "never"

    broker = InMemoryBroker()
    listener = _listener(broker)
    with pytest.raises(HandlerRegistrationError, match="unknown"):
        listener.dependency_overrides[get_settings] = needs_something
    assert get_settings not in listener.dependency_overrides
    assert await _handle(listener, broker, "ada") == ["ada: db for production"]
