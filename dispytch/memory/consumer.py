"""A member of a consumer group of the in-memory broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from dispytch.backends.base import Capabilities, Consumer, Delivery, OutgoingMessage, Subscription
from dispytch.errors import ConsumerStoppedError
from dispytch.memory.queue import BrokerLink, GroupQueue, StoredMessage

logger = logging.getLogger("dispytch.memory")

_GONE = object()
_FIRST_DELIVERY: Mapping[str, Any] = MappingProxyType({"deliveries": 1, "redelivered": False})

CAPABILITIES = Capabilities(
    persistent=True,
    ordered_per_key=True,
    consumer_groups=True,
    redelivers_on_nack=True,
    native_delay=True,
)


class InMemoryDelivery(Delivery):
    __slots__ = ("_consumer", "_message", "_settled")

    def __init__(self, consumer: InMemoryConsumer, message: StoredMessage) -> None:
        self._consumer = consumer
        self._message = message
        self._settled = False
        self.topic = message.topic
        self.value = message.value
        self.key = message.key
        self.headers = message.headers
        self.ordering_key = message.key
        self.metadata = (
            _FIRST_DELIVERY
            if message.deliveries == 1
            else {"deliveries": message.deliveries, "redelivered": True}
        )

    async def ack(self) -> None:
        self.ack_now()

    def ack_now(self) -> bool:
        if not self._settled and self._consumer._unsettled.pop(self, _GONE) is not _GONE:
            self._settled = True
            queue = self._consumer._queue
            if queue is not None:
                queue.settle(self._message)
        else:
            self._claim("ack")
        return True

    async def nack(self, *, delay: float | None = None) -> None:
        if not self._claim("nack"):
            return
        if delay:
            asyncio.get_running_loop().call_later(
                delay, self._consumer._put_back, self, self._message
            )
        else:
            self._consumer._put_back(self, self._message)

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        if not self._claim("retry_later"):
            return
        message = self._message
        copy = StoredMessage(message.topic, message.value, message.key, dict(headers))
        consumer = self._consumer
        queue = consumer._queue
        assert queue is not None
        # a delayed retry gives up order for throughput: later messages with the same key are
        # not held back while the copy waits
        queue.push_later(copy, delay)
        consumer._settle(self, message)

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        if self._settled:
            return
        message = self._message
        broker = self._consumer.broker
        broker.publish(
            OutgoingMessage(
                topic=broker.dead_letter_topic(message.topic),
                value=message.value,
                key=message.key,
                headers=dict(headers),
            )
        )
        if self._claim("dead_letter"):
            self._consumer._settle(self, message)

    def _claim(self, action: str) -> bool:
        if self._settled:
            logger.debug("%s of an already settled message on %r ignored", action, self.topic)
            return False
        if self not in self._consumer._unsettled:
            logger.debug("%s after the consumer closed ignored (message went back)", action)
            self._settled = True
            return False
        self._settled = True
        return True


class InMemoryConsumer(Consumer):
    capabilities = CAPABILITIES

    def __init__(
        self,
        broker: BrokerLink,
        group: str,
        topics: Sequence[str] | None,
        delimiter: str,
    ) -> None:
        self.broker = broker
        self.group = group
        self.topics = None if topics is None else list(topics)
        self.delimiter = delimiter
        self._queue: GroupQueue | None = None
        #: insertion-ordered: the order messages were received in
        self._unsettled: dict[InMemoryDelivery, None] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._stopped = False

    def describe(self) -> str:
        return f"InMemoryConsumer(group={self.group!r})"

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        if self.topics is not None:
            subscriptions = [Subscription.parse(topic, self.delimiter) for topic in self.topics]
        self._stopped = False
        self._queue = self.broker._join(self.group, subscriptions)

    async def receive(self) -> Delivery:
        queue = self._queue
        if queue is None:
            raise RuntimeError("start() the consumer before receiving")
        while True:
            if self._stopped:
                raise ConsumerStoppedError("the in-memory consumer was stopped")
            message = queue.take()
            if message is not None:
                delivery = InMemoryDelivery(self, message)
                self._unsettled[delivery] = None
                return delivery
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            queue.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    queue.wake()  # we were woken for a message we will not take: pass it on
                raise
            finally:
                self._waiter = None

    async def receive_many(self, max_messages: int) -> list[Delivery]:
        first = await self.receive()
        batch = [first]
        queue = self._queue
        assert queue is not None
        unsettled = self._unsettled
        for message in queue.take_many(max_messages - 1):
            delivery = InMemoryDelivery(self, message)
            unsettled[delivery] = None
            batch.append(delivery)
        return batch

    async def check_connection(self, timeout: float) -> bool | None:
        """In process: up from `start()` until `stop()`."""
        return self._queue is not None and not self._stopped

    async def stop(self) -> None:
        self._stopped = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def close(self) -> None:
        await self.stop()
        queue = self._queue
        if queue is None:
            return
        for delivery in reversed(list(self._unsettled)):
            queue.put_back(delivery._message)
        self._unsettled.clear()

    def _settle(self, delivery: InMemoryDelivery, message: StoredMessage) -> None:
        self._unsettled.pop(delivery, None)
        if self._queue is not None:
            self._queue.settle(message)

    def _put_back(self, delivery: InMemoryDelivery, message: StoredMessage) -> None:
        if delivery in self._unsettled:
            self._unsettled.pop(delivery, None)
            if self._queue is not None:
                self._queue.put_back(message)
