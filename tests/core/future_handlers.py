"""Handlers and dependencies written under `from __future__ import annotations`, where every
annotation is a string that Dispytch must evaluate itself (test_di.py runs them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from pydantic import BaseModel

from dispytch import Dependency, Event, HandlerGroup, TopicSegment


class Order(BaseModel):
    order_id: int
    amount: float


class Ledger:
    def __init__(self) -> None:
        self.entries: list[Any] = []


LEDGER = Ledger()


def get_ledger() -> Ledger:
    return LEDGER


async def open_tx(ledger: Annotated[Ledger, Dependency(get_ledger)]) -> AsyncIterator[str]:
    ledger.entries.append("begin")
    yield "tx"
    ledger.entries.append("commit")


module_group = HandlerGroup()


@module_group.handler(topic="orders:{region}", event="order_placed")
async def on_order(
    event: Event[Order],
    region: Annotated[str, TopicSegment()],
    ledger: Annotated[Ledger, Dependency(get_ledger)],
    tx: str = Dependency(open_tx),
) -> None:
    ledger.entries.append((region, event.body.order_id, event.body.amount, tx))


def make_local_group(seen: list[Any]) -> HandlerGroup:
    """A handler defined inside a function, naming classes that exist only in here."""

    class LocalBody(BaseModel):
        text: str

    class LocalDep:
        def __init__(self, event: Event[LocalBody]) -> None:
            self.shout = event.body.text.upper()

    def make_suffix(count: Annotated[int, TopicSegment()]) -> str:
        return "!" * count

    group = HandlerGroup()

    @group.handler(topic="notes:{count}", event="note")
    async def on_note(
        event: Event[LocalBody],
        dep: Annotated[LocalDep, Dependency()],
        suffix: Annotated[str, Dependency(make_suffix)],
    ) -> None:
        seen.append((type(event.body).__name__, dep.shout + suffix))

    return group
