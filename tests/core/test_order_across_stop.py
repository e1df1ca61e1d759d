"""Order per key across a stop: once a message is given back (the listener stopped while its
handler had retries left), nothing after it with the same key runs in that process; the ones
waiting behind it are given back too (issue 16, item 1)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dispytch import EventListener, HandlerGroup
from dispytch.events import Event

from .helpers import ScriptedConsumer, ScriptedDelivery, envelope, wait_until


def _keyed(key: str, seq: int) -> ScriptedDelivery:
    return ScriptedDelivery("orders", envelope("placed", {"key": key, "seq": seq}), key)


async def test_nothing_after_a_given_back_message_runs_with_its_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dispytch")
    deliveries = [_keyed(key, seq) for seq in range(5) for key in ("bad", "good")]
    consumer = ScriptedConsumer(deliveries)
    handled: list[tuple[str, int]] = []
    failed_once = asyncio.Event()
    group = HandlerGroup()

    @group.handler(topic="orders", event="placed", retries=5, retry_interval=30.0)
    async def place(event: Event[dict[str, object]]) -> None:
        key, seq = str(event.body["key"]), int(str(event.body["seq"]))
        if key == "bad" and seq == 1:
            failed_once.set()
            raise RuntimeError("payment service down")
        handled.append((key, seq))

    listener = EventListener(consumer, max_concurrency=20, shutdown_grace=5.0)
    listener.add_handler_group(group)
    async with listener:
        await asyncio.wait_for(failed_once.wait(), 3.0)
        await wait_until(lambda: ("good", 4) in handled, what="the good key handled")
    bad = [d for d in deliveries if d.ordering_key == "bad"]
    assert [d.outcomes for d in bad] == [["ack"], ["nack"], ["nack"], ["nack"], ["nack"]]
    assert [seq for key, seq in handled if key == "bad"] == [0]
    assert [seq for key, seq in handled if key == "good"] == [0, 1, 2, 3, 4]
    assert "retrying in" not in caplog.text.split("goes back")[-1]
    assert "3 message(s) waiting behind a given-back one" in caplog.text


async def test_no_retry_line_for_a_retry_cut_by_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler that fails once the stop began: its message goes back, and the log says
    only that (no "retrying in ..." for a retry that will not be made)."""
    caplog.set_level(logging.INFO, logger="dispytch")
    delivery = _keyed("k", 0)
    consumer = ScriptedConsumer([delivery])
    started = asyncio.Event()
    release = asyncio.Event()
    group = HandlerGroup()

    @group.handler(topic="orders", event="placed", retries=3, retry_interval=0.01)
    async def place(event: Event[dict[str, object]]) -> None:
        started.set()
        await release.wait()
        raise RuntimeError("failed during the stop")

    listener = EventListener(consumer, shutdown_grace=5.0)
    listener.add_handler_group(group)
    async with listener:
        await asyncio.wait_for(started.wait(), 3.0)
        stopping = asyncio.create_task(listener.stop())
        await wait_until(lambda: listener._stopping, what="the stop begun")
        release.set()
        await asyncio.wait_for(stopping, 5.0)
    assert delivery.outcomes == ["nack"]
    assert "goes back" in caplog.text
    assert "retrying in" not in caplog.text
