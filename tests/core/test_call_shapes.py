"""Handlers of every shape get the same arguments, whichever way the plan calls them
(by position for plain functions, by name otherwise)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from dispytch import Dependency, Event, HandlerGroup

from .helpers import envelope, run_group


class Body(BaseModel):
    x: int


def dep() -> str:
    return "d"


Seen = list[tuple[Any, ...]]


def only_keywords(func: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """A wrapper that insists on keyword arguments, as `**kwargs` readers do."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        assert not args, f"positional arguments {args!r}"
        await func(**kwargs)

    return wrapper


def plain(seen: Seen) -> Callable[..., Awaitable[None]]:
    async def handler(event: Event[Body], d: Annotated[str, Dependency(dep)]) -> None:
        seen.append((event.body.x, d))

    return handler


def wrapped(seen: Seen) -> Callable[..., Awaitable[None]]:
    @only_keywords
    async def handler(event: Event[Body], d: Annotated[str, Dependency(dep)]) -> None:
        seen.append((event.body.x, d))

    return handler


def keyword_only(seen: Seen) -> Callable[..., Awaitable[None]]:
    async def handler(*, event: Event[Body], d: Annotated[str, Dependency(dep)]) -> None:
        seen.append((event.body.x, d))

    return handler


def default_first(seen: Seen) -> Callable[..., Awaitable[None]]:
    async def handler(
        flag: int = 3,
        event: Event[Body] = None,  # type: ignore[assignment]
        d: Annotated[str, Dependency(dep)] = "",
    ) -> None:
        seen.append((event.body.x, d, flag))

    return handler


def optional_event(seen: Seen) -> Callable[..., Awaitable[None]]:
    async def handler(event: Event[Body] | None = None, d: str | None = Dependency(dep)) -> None:
        assert event is not None
        seen.append((event.body.x, d))

    return handler


def reordered(seen: Seen) -> Callable[..., Awaitable[None]]:
    async def handler(d: Annotated[str, Dependency(dep)], event: Event[Body]) -> None:
        seen.append((event.body.x, d))

    return handler


class Handlers:
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def method(self, event: Event[Body], d: Annotated[str, Dependency(dep)]) -> None:
        self.seen.append((event.body.x, d))

    async def __call__(self, event: Event[Body], d: Annotated[str, Dependency(dep)]) -> None:
        self.seen.append((event.body.x, d))


SHAPES: dict[str, Callable[[Seen], Callable[..., Awaitable[None]]]] = {
    "plain": plain,
    "wrapped": wrapped,
    "keyword_only": keyword_only,
    "default_first": default_first,
    "optional_event": optional_event,
    "reordered": reordered,
    "bound_method": lambda seen: Handlers(seen).method,
    "callable_object": lambda seen: Handlers(seen),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_every_handler_shape_gets_its_arguments(shape: str) -> None:
    seen: Seen = []
    group = HandlerGroup()
    group.handler(topic="t", event="e")(SHAPES[shape](seen))
    await run_group(group, [("t", envelope("e", {"x": 5})), ("t", envelope("e", {"x": 6}))])
    expected = [(5, "d", 3), (6, "d", 3)] if shape == "default_first" else [(5, "d"), (6, "d")]
    assert sorted(seen) == expected
