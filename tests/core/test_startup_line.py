"""One INFO line at start says what the listener runs (issue 16, item 7): backend, group,
subscriptions, handlers, concurrency; consumers describe themselves with credentials masked."""

from __future__ import annotations

import logging

import pytest

from dispytch import EventListener, HandlerGroup, InMemoryBroker
from dispytch.events import Event


def startup_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and r.getMessage().startswith("listening: ")
    ]


async def test_the_listener_says_what_it_runs_once_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dispytch")
    broker = InMemoryBroker()
    group = HandlerGroup()

    @group.handler(topic="orders:{customer}", event="placed", name="place_order")
    async def place_order(event: Event[dict[str, object]]) -> None: ...

    @group.handler(topic="payments", event="paid", name="record_payment")
    async def record_payment(event: Event[dict[str, object]]) -> None: ...

    listener = EventListener(broker.consumer("order-service"), max_concurrency=7)
    listener.add_handler_group(group)
    async with listener:
        [line] = startup_lines(caplog)
    assert line == (
        "listening: InMemoryConsumer(group='order-service'); subscriptions: "
        "'payments', 'orders:{customer}'; 2 handler(s): record_payment, place_order; "
        "max_concurrency=7"
    )
    assert repr(listener.consumer) == "<InMemoryConsumer(group='order-service')>"


async def test_many_handlers_are_summed_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dispytch")
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"))
    for n in range(13):

        async def handle(event: Event[dict[str, object]]) -> None: ...

        listener.handler(topic=f"t{n}", event="e", name=f"h{n}")(handle)
    async with listener:
        [line] = startup_lines(caplog)
    assert "13 handler(s): h0, h1, h2, h3, h4, h5, h6, h7, h8, h9 and 3 more;" in line
