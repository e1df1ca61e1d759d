"""A plan's flat path (plain dependency functions) meeting a function that returns a
@contextmanager object: the values already made are reused, nothing is made twice, and the
compiled plan is not changed by running it (it may be shared by several listeners)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

from pydantic import BaseModel

from dispytch import Dependency, Event, HandlerGroup
from tests.core.helpers import envelope, run_group


class Body(BaseModel):
    n: int


async def test_values_made_before_a_context_manager_are_not_made_again() -> None:
    calls: list[str] = []
    handled: list[tuple[int, int, int]] = []

    def first() -> int:
        calls.append("first")
        return 1

    @contextlib.contextmanager
    def _session() -> Iterator[int]:
        calls.append("enter")
        yield 2
        calls.append("exit")

    def session() -> contextlib.AbstractContextManager[int]:  # a plain function
        return _session()

    group = HandlerGroup()

    @group.handler(topic="t", event="e")
    async def handler(
        event: Event[Body],
        a: Annotated[int, Dependency(first)],
        b: Annotated[int, Dependency(session)],
    ) -> None:
        handled.append((event.body.n, a, b))

    plan = group.handlers[0].plan
    await run_group(group, [("t", envelope("e", {"n": 1}))])
    await run_group(group, [("t", envelope("e", {"n": 2}))])
    assert handled == [(1, 1, 2), (2, 1, 2)]
    assert calls == ["first", "enter", "exit", "first", "enter", "exit"]
    assert group.handlers[0].plan is plan
    assert plan._flat  # unchanged by running: the next run takes the same path
