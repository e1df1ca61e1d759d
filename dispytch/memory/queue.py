"""A consumer group's queue inside the in-memory broker: ready messages, order per key."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dispytch.backends.base import OutgoingMessage, Subscription


class BrokerLink(Protocol):
    """What the broker's consumers and producers use of it (`InMemoryBroker` is one): a
    protocol, so that their modules do not import the broker's, which creates them."""

    def publish(self, message: OutgoingMessage) -> None: ...

    def dead_letter_topic(self, topic: str) -> str: ...

    def _join(self, group_name: str, subscriptions: Sequence[Subscription]) -> GroupQueue: ...


@dataclass(slots=True, eq=False)
class StoredMessage:
    topic: str
    value: bytes
    key: bytes | None
    headers: dict[str, str]
    deliveries: int = 0


@dataclass(slots=True, eq=False)
class GroupQueue:
    """The messages of one consumer group."""

    name: str
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    ready: deque[StoredMessage] = field(default_factory=deque)
    #: keys with a message ready or in flight; later messages with that key wait in `blocked`
    outstanding_keys: set[Hashable] = field(default_factory=set)
    blocked: dict[Hashable, deque[StoredMessage]] = field(default_factory=dict)
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    unsettled: int = 0
    #: copies waiting for their delay (delayed retries) before they join the queue
    scheduled: int = 0

    def wants(self, topic: str, dead_letter_suffix: str) -> bool:
        return any(takes(sub, topic, dead_letter_suffix) for sub in self.subscriptions.values())

    def push(self, message: StoredMessage) -> None:
        key = message.key
        if key is not None:
            if key in self.outstanding_keys:
                self.blocked.setdefault(key, deque()).append(message)
                return
            self.outstanding_keys.add(key)
        self.ready.append(message)
        self.wake()

    def push_later(self, message: StoredMessage, delay: float) -> None:
        """`push` after `delay` seconds; counted as pending meanwhile."""
        self.scheduled += 1

        def due() -> None:
            self.scheduled -= 1
            self.push(message)

        asyncio.get_running_loop().call_later(delay, due)

    def put_back(self, message: StoredMessage) -> None:
        """A delivered message returns (nack, consumer closed): first in line again."""
        self.unsettled -= 1
        self.ready.appendleft(message)
        self.wake()

    def settle(self, message: StoredMessage) -> None:
        self.unsettled -= 1
        key = message.key
        if key is None:
            return
        waiting = self.blocked.get(key)
        if waiting:
            self.ready.append(waiting.popleft())
            if not waiting:
                del self.blocked[key]
            self.wake()
        else:
            self.outstanding_keys.discard(key)

    def take(self) -> StoredMessage | None:
        if not self.ready:
            return None
        message = self.ready.popleft()
        message.deliveries += 1
        self.unsettled += 1
        return message

    def take_many(self, limit: int) -> list[StoredMessage]:
        """`take()` up to `limit` times: the ready messages, in order (maybe none)."""
        ready = self.ready
        taken = [ready.popleft() for _ in range(min(limit, len(ready)))]
        for message in taken:
            message.deliveries += 1
        self.unsettled += len(taken)
        return taken

    def wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def pending(self) -> int:
        """Messages not yet settled: ready, waiting behind their key, delivered, or waiting for
        a delayed retry."""
        return (
            len(self.ready) + sum(map(len, self.blocked.values())) + self.unsettled + self.scheduled
        )


def takes(subscription: Subscription, topic: str, dead_letter_suffix: str) -> bool:
    """Does `subscription` receive `topic`? A dead-letter topic only goes to subscriptions that
    name it (literally, or with a pattern ending in the suffix): a wildcard handler must not
    receive its own dead letters, fail on them, and loop."""
    if (
        dead_letter_suffix
        and topic.endswith(dead_letter_suffix)
        and not subscription.pattern.endswith(dead_letter_suffix)
    ):
        return False
    return subscription.matches(topic)
