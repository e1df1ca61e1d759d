"""Dead-letter tooling: read, filter and replay dead letters, on any backend.

```python
# fragment
from contextlib import aclosing
from dispytch.deadletters import LetterFilter, open_store, replay_letters

async with open_store("kafka://127.0.0.1:9092", source_topic="orders") as store:
    async with aclosing(store.read()) as letters:
        async for letter in letters:
            print(letter.index, letter.event_type, letter.reason)
    report = await replay_letters(store, LetterFilter.of(event_types=["order_placed"]))
```

The Kafka and RabbitMQ stores import their client libraries only when used
(`KafkaDeadLetterStore`, `RabbitMQDeadLetterStore`, or `open_store()` with their URL).
See docs/dead-letters.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispytch.deadletters.errors import (
    DeadLetterError,
    DeadLetterSourceError,
    NotReplayableError,
    ReplayProgressFullError,
)
from dispytch.deadletters.filters import LetterFilter
from dispytch.deadletters.letter import DeadLetter, Envelope, decode_envelope, replay_headers
from dispytch.deadletters.replay import ReplayReport, replay_letters, select_letters
from dispytch.deadletters.store import DeadLetterStore
from dispytch.deadletters.url import StoreUsageError, open_store

if TYPE_CHECKING:
    from dispytch.deadletters.kafka import KafkaDeadLetterStore
    from dispytch.deadletters.rabbitmq import RabbitMQDeadLetterStore

__all__ = [
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterSourceError",
    "DeadLetterStore",
    "Envelope",
    "KafkaDeadLetterStore",
    "LetterFilter",
    "NotReplayableError",
    "RabbitMQDeadLetterStore",
    "ReplayProgressFullError",
    "ReplayReport",
    "StoreUsageError",
    "decode_envelope",
    "open_store",
    "replay_headers",
    "replay_letters",
    "select_letters",
]

_LAZY = {
    "KafkaDeadLetterStore": "dispytch.deadletters.kafka",
    "RabbitMQDeadLetterStore": "dispytch.deadletters.rabbitmq",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dispytch.deadletters' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
