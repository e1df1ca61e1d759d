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

Each backend keeps its store in its own package (`dispytch.kafka.KafkaDeadLetterStore`,
`dispytch.rabbitmq.RabbitMQDeadLetterStore`); `open_store()` finds it by the URL's scheme in
the `dispytch.dead_letter_stores` entry point group (see `dispytch.deadletters.url`), and
imports the backend's client library only then. See docs/dead-letters.md.
"""

from __future__ import annotations

from typing import Any

from dispytch.deadletters.errors import (
    DeadLetterError,
    DeadLetterSourceError,
    NotReplayableError,
    ReplayProgressFullError,
)
from dispytch.deadletters.filters import LetterFilter
from dispytch.deadletters.letter import DeadLetter, Envelope, decode_envelope, replay_headers
from dispytch.deadletters.lookup import AmbiguousLetterError, find_letters
from dispytch.deadletters.replay import ReplayReport, replay_letters, select_letters
from dispytch.deadletters.store import DeadLetterStore
from dispytch.deadletters.url import (
    ENTRY_POINT_GROUP,
    StoreOpener,
    StoreOptions,
    StoreUsageError,
    open_store,
    register_store_opener,
)
from dispytch.moved_names import moved_attribute
from dispytch.reasons import DeadLetterReason

__all__ = [
    "ENTRY_POINT_GROUP",
    "AmbiguousLetterError",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterReason",
    "DeadLetterSourceError",
    "DeadLetterStore",
    "Envelope",
    "LetterFilter",
    "NotReplayableError",
    "ReplayProgressFullError",
    "ReplayReport",
    "StoreOpener",
    "StoreOptions",
    "StoreUsageError",
    "decode_envelope",
    "find_letters",
    "open_store",
    "register_store_opener",
    "replay_headers",
    "replay_letters",
    "select_letters",
]

#: stores that lived here before they moved into their backend's package (importing them warns)
_MOVED = {
    "KafkaDeadLetterStore": "dispytch.kafka",
    "RabbitMQDeadLetterStore": "dispytch.rabbitmq",
}


def __getattr__(name: str) -> Any:
    return moved_attribute(__name__, name, _MOVED)
