"""The retry log line says a backoff as a person reads it: "at once", never "in 0.00s"."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel

from dispytch import Event, EventListener, InMemoryBroker
from tests.core.helpers import envelope, publish_raw, wait_until


class Body(BaseModel):
    n: int


async def test_a_zero_backoff_is_logged_as_retrying_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="dispytch")
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))

    @listener.handler(topic="t", event="e", retries=1, retry_interval=0)
    async def handler(event: Event[Body]) -> None:
        raise ValueError("always")

    async with listener:
        await publish_raw(broker, "t", envelope("e", {"n": 1}))
        await wait_until(lambda: broker.pending("g") == 0)
    retries = [r.getMessage() for r in caplog.records if "; retrying" in r.getMessage()]
    assert retries, [r.getMessage() for r in caplog.records]
    assert all("retrying at once" in message for message in retries), retries
    assert not [message for message in retries if "0.00s" in message]


@pytest.mark.parametrize(
    ("delay", "said"),
    [(0.0, "at once"), (0.0004, "at once"), (0.012, "in 12 ms"), (1.5, "in 1.50 s")],
)
def test_backoffs_read_as_people_say_them(delay: float, said: str) -> None:
    from dispytch.retrying import when

    assert when(delay) == said
