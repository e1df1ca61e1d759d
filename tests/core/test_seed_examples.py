"""The seed's two examples, run verbatim against each other on the in-memory broker."""

from __future__ import annotations

import importlib
import json
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from dispytch import EventEmitter, EventListener, InMemoryBroker
from dispytch.backends.base import OutgoingMessage
from dispytch.memory import InMemoryProducer
from tests.core.helpers import wait_until

SEED_DIR = Path(__file__).parent / "seed"
SEED_TEXT = Path("/work/shared/seed/000_f4e00114dc0cc2aa.txt")
MODULES = ("service", "handler_example", "emitter_example")


class RecordingProducer(InMemoryProducer):
    def __init__(self, broker: InMemoryBroker) -> None:
        super().__init__(broker)
        self.sent: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        await super().send(message, timeout=timeout)
        self.sent.append(message)


@pytest.fixture
def seed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ModuleType]]:
    for name in MODULES:  # another test folder may have its own `service` module loaded
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(SEED_DIR))
    try:
        yield {name: importlib.import_module(name) for name in MODULES}
    finally:
        for name in MODULES:
            sys.modules.pop(name, None)


@pytest.mark.skipif(not SEED_TEXT.exists(), reason="the seed text is not on this machine")
def test_seed_files_are_verbatim_copies() -> None:
    blocks = re.findall(r"```python\n(.*?)```", SEED_TEXT.read_text(), re.S)
    assert (SEED_DIR / "handler_example.py").read_text() == blocks[0]
    assert (SEED_DIR / "emitter_example.py").read_text() == blocks[1]


async def test_emitter_example_reaches_handler_example(seed: dict[str, ModuleType]) -> None:
    handler_example, emitter_example, service = (
        seed["handler_example"],
        seed["emitter_example"],
        seed["service"],
    )
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("users"))
    listener.add_handler_group(handler_example.user_events)
    producer = RecordingProducer(broker)

    async with listener:
        await emitter_example.example_emit(EventEmitter(producer))
        await wait_until(lambda: len(service.user_service.users) == 1, what="the handler")
        await wait_until(lambda: broker.pending("users") == 0, what="the ack")

    [message] = producer.sent
    assert message.topic == "user_events"
    sent = json.loads(message.value)
    assert sent["type"] == "user_registered"

    [user] = service.user_service.users
    assert isinstance(user, handler_example.User)  # validated into the handler's own model
    assert user.model_dump() == sent["body"]["user"]
    assert user.email == "example@mail.com"
    assert user.name == "John Doe"
    assert uuid.UUID(user.id).version == 4
    assert isinstance(sent["body"]["timestamp"], int)
    assert broker.backlog("user_events.dlq") == 0
