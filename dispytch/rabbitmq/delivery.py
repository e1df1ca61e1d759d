"""`RabbitMQDelivery`: one AMQP message, settled with basic.ack / basic.nack / a republish."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dispytch.backends.base import Delivery
from dispytch.backends.lazy_metadata import LazyMetadata
from dispytch.rabbitmq._acks import CHANNEL_GONE, AckBatcher
from dispytch.rabbitmq._amqp import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    aio_pika,
)
from dispytch.rabbitmq._publish import publish_confirmed
from dispytch.rabbitmq._routing import delivered_routing_key, delivered_topic
from dispytch.rabbitmq.headers import (
    GROUP_HEADER,
    INTERNAL_HEADERS,
    KEY_HEADER,
    ROUTING_KEY_HEADER,
    TOPIC_HEADER,
    death_count,
    decode_key,
    redelivery_count,
    to_text_headers,
)
from dispytch.rabbitmq.topology import declare_delay_queue, delay_bucket_ms

logger = logging.getLogger("dispytch.rabbitmq")


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a delivery needs to dead-letter or delay itself: shared by one consumer."""

    #: the exchange dead letters are published to
    dead_letter_exchange: AbstractExchange
    #: its channel (with publisher confirms): delayed redeliveries are published on it too
    channel: AbstractChannel
    #: how long a dead-letter or delay publish may wait for the broker's confirm
    publish_timeout: float | None
    #: called once a delivery is settled (the consumer tracks unsettled ones)
    on_settled: Callable[[RabbitMQDelivery], None]
    #: sends acks in batches (None: one basic.ack per delivery; see `_acks`)
    acks: AckBatcher | None = None


class RabbitMQDelivery(Delivery):
    __slots__ = ("_message", "_queue", "_routing_key", "_settled", "_settlement")

    def __init__(
        self,
        message: AbstractIncomingMessage,
        queue: str,
        settlement: Settlement,
        topic_delimiter: str | None = None,
    ):
        """`topic_delimiter`: the listener's; with it, the `dispytch-topic` header may restore
        the delimiters of the routing key (never name another routing key, see `_routing`)."""
        raw = message.headers or {}
        self._message = message
        self._queue = queue
        self._routing_key = delivered_routing_key(
            message.exchange, message.routing_key or "", queue, raw
        )
        self._settlement = settlement
        self._settled = False
        self.topic = delivered_topic(self._routing_key, raw, topic_delimiter)
        self.value = message.body
        self.key = decode_key(raw.get(KEY_HEADER))
        self.headers = to_text_headers(raw)
        # one queue hands a consumer its messages in order: the listener keeps that order
        # among equal keys (redelivery and competing consumers can still reorder, see docs)
        self.ordering_key = self.key
        self.metadata: Mapping[str, Any] = MessageMetadata(message, queue)

    @property
    def delivery_count(self) -> int | None:
        # a quorum queue's x-delivery-count counts the earlier deliveries (absent: none, or a
        # classic queue, which does not count)
        earlier = redelivery_count(self._message.headers)
        return None if earlier is None else earlier + 1

    async def ack(self) -> None:
        if not self.ack_now():
            await self._settle("ack", self._message.ack)

    def ack_now(self) -> bool:
        acks = self._settlement.acks
        if acks is None:
            return False
        if self._settled:
            logger.debug("ack of an already settled message from %r ignored", self._queue)
            return True
        self._settled = True
        self._settlement.on_settled(self)
        acks.ack(self._message)  # sent with the others of this loop iteration
        return True

    async def nack(self, *, delay: float | None = None) -> None:
        if delay is None or delay <= 0:
            await self._settle("nack", lambda: self._message.nack(requeue=True))
            return
        await self._republish_delayed(delay, dict(self._message.headers or {}))
        await self._settle("ack (delayed redelivery)", self._message.ack)

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        raw = self._message.headers or {}
        kept: dict[str, Any] = {name: raw[name] for name in INTERNAL_HEADERS if name in raw}
        await self._republish_delayed(delay, {**kept, **headers})
        await self._settle("ack (retry later)", self._message.ack)

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        raw = self._message.headers or {}
        stored: dict[str, Any] = {name: raw[name] for name in (KEY_HEADER,) if name in raw}
        for name, text in headers.items():
            # a header passed on unchanged keeps its AMQP type (a number stays a number)
            stored[name] = raw[name] if name in raw and self.headers.get(name) == text else text
        stored[TOPIC_HEADER] = self.topic
        stored[GROUP_HEADER] = self._queue
        dead = self._copy(stored)
        await publish_confirmed(
            self._settlement.dead_letter_exchange,
            dead,
            self._routing_key,
            mandatory=True,
            timeout=self._settlement.publish_timeout,
            what="the dead letter",
        )
        await self._settle("ack (dead-lettered)", self._message.ack)

    async def _republish_delayed(self, delay: float, headers: dict[str, Any]) -> None:
        """Park a copy in the delay queue, whose expiry sends it back to this queue only."""
        ms = delay_bucket_ms(delay)
        headers[TOPIC_HEADER] = self.topic
        headers[ROUTING_KEY_HEADER] = self._routing_key
        channel = self._settlement.channel
        name = await declare_delay_queue(channel, self._queue, ms)
        await publish_confirmed(
            channel.default_exchange,
            self._copy(headers),
            name,
            mandatory=True,
            timeout=self._settlement.publish_timeout,
            what="the delayed redelivery",
        )

    def _copy(self, headers: dict[str, Any]) -> aio_pika.Message:
        original = self._message
        return aio_pika.Message(
            original.body,
            headers=headers,
            content_type=original.content_type,
            content_encoding=original.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=original.priority,
            correlation_id=original.correlation_id,
            reply_to=original.reply_to,
            timestamp=original.timestamp,
            type=original.type,
            app_id=original.app_id,
        )

    async def _settle(self, what: str, settle: Callable[[], Any]) -> None:
        if self._settled:
            logger.debug("%s of an already settled message from %r ignored", what, self._queue)
            return
        self._settled = True
        self._settlement.on_settled(self)
        try:
            await settle()
        except CHANNEL_GONE as error:
            logger.warning(
                "could not %s a message from %r (%s): its channel is gone, "
                "the broker will deliver it again",
                what,
                self._queue,
                error,
            )
        finally:
            if self._settlement.acks is not None:  # written: batched acks may pass it now
                self._settlement.acks.settled(self._message)

    @property
    def settled(self) -> bool:
        return self._settled


class MessageMetadata(LazyMetadata):
    """The delivery's AMQP facts (queue, exchange, routing key, delivery tag, redelivered,
    the broker's delivery and dead-letter counts, message and correlation ids, priority),
    read from the message when asked for: most handlers never look."""

    __slots__ = ("_message", "_queue")

    KEYS = (
        "queue",
        "exchange",
        "routing_key",
        "delivery_tag",
        "redelivered",
        "delivery_count",
        "delayed_redeliveries",
        "message_id",
        "correlation_id",
        "priority",
    )
    #: read from the message's attribute of the same name
    _PLAIN = frozenset(
        ("exchange", "routing_key", "delivery_tag", "message_id", "correlation_id", "priority")
    )

    def __init__(self, message: AbstractIncomingMessage, queue: str) -> None:
        self._message = message
        self._queue = queue

    def __getitem__(self, name: str) -> Any:
        message = self._message
        if name in self._PLAIN:
            return getattr(message, name)
        if name == "queue":
            return self._queue
        if name == "redelivered":
            return bool(message.redelivered)
        if name == "delivery_count":
            return redelivery_count(message.headers)
        if name == "delayed_redeliveries":
            return death_count(message.headers)
        raise KeyError(name)
