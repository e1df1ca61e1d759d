"""`dispytch.testing`'s helpers for users' tests (issue 16, item 11): pinned names, importable
without pytest, and doing what docs/testing.md says."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dispytch.testing
from dispytch import EventListener, HandlerGroup, InMemoryBroker
from dispytch.events import Event
from dispytch.testing import dead_letters, settled

from .helpers import envelope, publish_raw


def test_the_helpers_are_pinned() -> None:
    assert dispytch.testing.__all__ == ["dead_letters", "settled"]


def test_the_helpers_import_without_pytest() -> None:
    code = (
        "import sys\n"
        "class NoPytest:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pytest' or name.startswith(('pytest.', '_pytest')):\n"
        "            raise ImportError('pytest is not installed here')\n"
        "sys.meta_path.insert(0, NoPytest())\n"
        "from dispytch.testing import dead_letters, settled\n"
        "assert 'pytest' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


async def test_settled_waits_and_dead_letters_reads_each_reason_once() -> None:
    broker = InMemoryBroker()
    group = HandlerGroup()

    @group.handler(topic="orders", event="placed")
    async def place(event: Event[dict[str, int]]) -> None:
        if event.body["n"] % 2:
            raise ValueError(f"odd order {event.body['n']}")

    listener = EventListener(broker.consumer("svc"))
    listener.add_handler_group(group)
    async with listener:
        for n in range(4):
            await publish_raw(broker, "orders", envelope("placed", {"n": n}))
        await settled(broker, "svc")
        assert broker.pending("svc") == 0
        first = await dead_letters(broker, "orders", 1)
        second = await dead_letters(broker, "orders", 1)
    assert [r.error_message for r in first + second] == ["odd order 1", "odd order 3"]
    assert {r.stage for r in first + second} == {"handler"}
    with pytest.raises(TimeoutError, match="0 of 1 dead letter"):
        await dead_letters(broker, "orders", 1, timeout=0.2)


async def test_settled_says_what_is_left_when_it_times_out() -> None:
    broker = InMemoryBroker()
    await publish_raw(broker, "orders", envelope("placed", {"n": 1}))
    consumer = broker.consumer("svc", ["orders"])
    await consumer.start([])
    try:
        with pytest.raises(TimeoutError, match="'svc' still has 1 unsettled"):
            await settled(broker, "svc", timeout=0.2)
    finally:
        await consumer.close()
