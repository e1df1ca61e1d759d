"""The in-process broker: topics, consumer groups, acks, redelivery, dead letters, order per key.

Semantics (the same promises the conformance suite checks on real brokers):
- A consumer group is a queue that lives in the broker once a member subscribed. Every group
  subscribed to a topic gets every message published to it; members of a group share them.
- Messages published to a topic that no group subscribes to yet are kept for the first group
  that subscribes (so a test may emit before its listener starts).
- A delivered message stays with the group until it is acked or dead-lettered. `nack()` puts it
  back (after `delay` seconds if given); closing a consumer puts back all it had not settled.
- Messages with the same key are delivered one at a time per group, in publish order: the next
  one is handed out only once the previous one is settled.
- `dead_letter()` publishes the original bytes and headers plus the reason's headers to
  `<topic><dead_letter_suffix>` (default `.dlq`), then settles the message.
Everything lives in memory: nothing survives the process, and the broker belongs to one event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from dispytch.backends.base import OutgoingMessage, Subscription
from dispytch.errors import MessageTooLargeError
from dispytch.memory.consumer import CAPABILITIES, InMemoryConsumer
from dispytch.memory.producer import InMemoryProducer
from dispytch.memory.queue import GroupQueue, StoredMessage, takes

#: topics whose receiving groups are remembered; topics come and go (one per entity), so the
#: memo is emptied when full rather than growing with every topic ever published to
_ROUTE_CACHE_LIMIT = 1024


class InMemoryBroker:
    """An in-process broker for demos and tests. `consumer()` and `producer()` connect to it."""

    capabilities = CAPABILITIES

    def __init__(
        self, *, dead_letter_suffix: str = ".dlq", max_message_bytes: int | None = None
    ) -> None:
        self.dead_letter_suffix = dead_letter_suffix
        self.max_message_bytes = max_message_bytes
        self._groups: dict[str, GroupQueue] = {}
        self._backlog: dict[str, deque[StoredMessage]] = {}
        self._routes: dict[str, tuple[GroupQueue, ...]] = {}

    def consumer(
        self, group: str = "default", topics: Sequence[str] | None = None, delimiter: str = ":"
    ) -> InMemoryConsumer:
        """A consumer in `group`. Without `topics` it subscribes to the listener's handler
        topics; `topics` (which may use `*` and `{name}` segments split on `delimiter`) override."""
        return InMemoryConsumer(self, group, topics, delimiter)

    def producer(self) -> InMemoryProducer:
        return InMemoryProducer(self)

    def publish(self, message: OutgoingMessage) -> None:
        if self.max_message_bytes is not None and len(message.value) > self.max_message_bytes:
            raise MessageTooLargeError(
                f"message of {len(message.value)} bytes exceeds the broker's limit of "
                f"{self.max_message_bytes} bytes"
            )
        self._store(StoredMessage(message.topic, message.value, message.key, dict(message.headers)))

    def dead_letter_topic(self, topic: str) -> str:
        return topic + self.dead_letter_suffix

    def pending(self, group: str) -> int:
        """How many messages `group` has not settled yet (0 for an unknown group)."""
        queue = self._groups.get(group)
        return 0 if queue is None else queue.pending

    def backlog(self, topic: str) -> int:
        """Messages kept on `topic` for a group that has not subscribed yet."""
        return len(self._backlog.get(topic, ()))

    def _store(self, message: StoredMessage) -> None:
        groups = self._routes.get(message.topic)
        if groups is None:
            suffix = self.dead_letter_suffix
            groups = tuple(g for g in self._groups.values() if g.wants(message.topic, suffix))
            if len(self._routes) >= _ROUTE_CACHE_LIMIT:
                self._routes.clear()
            self._routes[message.topic] = groups
        if not groups:
            self._backlog.setdefault(message.topic, deque()).append(message)
            return
        if len(groups) == 1:
            groups[0].push(message)
            return
        for group in groups:
            headers = dict(message.headers)  # each group's handlers get their own
            group.push(StoredMessage(message.topic, message.value, message.key, headers))

    def _join(self, group_name: str, subscriptions: Sequence[Subscription]) -> GroupQueue:
        group = self._groups.get(group_name)
        if group is None:
            group = self._groups[group_name] = GroupQueue(group_name)
        added = [s for s in subscriptions if s.pattern not in group.subscriptions]
        for subscription in added:
            group.subscriptions[subscription.pattern] = subscription
        if added:
            self._routes.clear()
            suffix = self.dead_letter_suffix
            for topic in [t for t in self._backlog if any(takes(s, t, suffix) for s in added)]:
                for message in self._backlog.pop(topic):
                    group.push(message)
        return group
