"""The event the failure scenarios stream: a numbered tick, keyed to spread over partitions."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel

from dispytch import EventBase

TICK = "tick"


class Tick(BaseModel):
    """A tick's body, as handlers validate it."""

    seq: int
    key: str | None = None
    poison: bool = False
    pad: str = ""


class TickEvent(EventBase):
    """A tick as it is emitted; the topic is a field, so that every test has its own."""

    __topic__ = "{stream}"
    __event_type__ = TICK
    __key__ = "key"

    stream: str
    seq: int
    key: str | None = None
    poison: bool = False
    pad: str = ""


def tick_id(seq: int) -> str:
    return f"tick-{seq}"


def ticks(topic: str, seqs: Iterable[int], keys: int = 16) -> list[TickEvent]:
    """Ticks with ids `tick-<seq>`, keyed `k<seq % keys>` (no key when `keys` is 0)."""
    return [
        TickEvent(
            id=tick_id(seq), stream=topic, seq=seq, key=f"k{seq % keys}" if keys else None
        )
        for seq in seqs
    ]
