"""`KeyLock`: one handler call at a time per key, across the listener's concurrent workers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from dispytch.events import Event
from dispytch.middleware.context import CallNext, HandlerCall


def message_key(event: Event[Any]) -> Hashable:
    return event.key


class KeyLock:
    """A handler-call middleware that serializes the calls whose events have the same key
    (`key(event)`, by default the message key; None: no lock). Calls with different keys run
    concurrently. A lock lives only while calls for its key run or wait: memory stays bounded
    by the calls in flight, whatever keys come from the wire.

    Note: the listener already keeps order per ordering key (the message key on Kafka); this is
    for other keys, such as a customer id in the body, or to share a lock across handlers."""

    def __init__(self, key: Callable[[Event[Any]], Hashable] = message_key) -> None:
        self._key = key
        #: key -> (lock, calls holding or waiting for it)
        self._locks: dict[Hashable, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        """Keys with calls running or waiting."""
        return len(self._locks)

    async def __call__(self, call: HandlerCall, call_next: CallNext) -> Any:
        key = self._key(call.event)
        if key is None:
            return await call_next()
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                return await call_next()
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]
