"""`NatsDelivery`: one JetStream message, settled by ack, nak (with delay) or term."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from dispytch.backends.base import Delivery
from dispytch.nats._client import nats
from dispytch.nats.headers import DUE_HEADER, to_nats
from dispytch.nats.topology import JetStreamTopology

if TYPE_CHECKING:
    from nats.aio.msg import Msg

logger = logging.getLogger("dispytch.nats")


class SettlingConsumer(Protocol):
    """What a delivery settles through: the consumer that handed it out (a protocol, so that
    this module does not import the consumer's)."""

    topology: JetStreamTopology
    _unsettled: dict[NatsDelivery, None]

    def _settled(self, delivery: NatsDelivery) -> None: ...

    def _subject_of(self, topic: str) -> str: ...

    def _retry_subject(self, topic: str) -> str: ...

    async def _publish_owned(
        self, subject: str, value: bytes, headers: dict[str, str]
    ) -> None: ...


class NatsDelivery(Delivery):
    __slots__ = ("_consumer", "_msg", "_settled")

    def __init__(
        self,
        consumer: SettlingConsumer,
        msg: Msg,
        topic: str,
        headers: dict[str, str],
        key: bytes | None,
    ) -> None:
        self._consumer = consumer
        self._msg = msg
        self._settled = False
        self.topic = topic
        self.value = msg.data
        self.key = key
        self.headers = headers
        self.ordering_key = key
        metadata: dict[str, Any] = {"subject": msg.subject}
        try:
            meta = msg.metadata
            metadata.update(
                stream=meta.stream,
                stream_sequence=meta.sequence.stream,
                num_delivered=meta.num_delivered,
                redelivered=(meta.num_delivered or 1) > 1,
            )
        except (nats.errors.NotJSMessageError, AttributeError, ValueError, TypeError):
            pass
        self.metadata = metadata

    @property
    def delivery_count(self) -> int | None:
        count = self.metadata.get("num_delivered")
        return count if isinstance(count, int) and count >= 1 else None

    async def ack(self) -> None:
        if self._claim("ack"):
            await self._msg.ack()

    async def nack(self, *, delay: float | None = None) -> None:
        if self._claim("nack"):
            await self._msg.nak(delay=delay if delay and delay > 0 else None)

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        if not self._live("retry_later"):
            return
        consumer = self._consumer
        copy_headers = to_nats(headers, self.key)
        copy_headers[DUE_HEADER] = str(int((time.time() + max(delay, 0.0)) * 1000))
        retry_subject = consumer._retry_subject(consumer._subject_of(self.topic))
        await consumer._publish_owned(retry_subject, self.value, copy_headers)
        if self._claim("retry_later"):
            await self._msg.ack()

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        if not self._live("dead_letter"):
            return
        consumer = self._consumer
        subject = consumer.topology.dead_letter_subject(consumer._subject_of(self.topic))
        await consumer._publish_owned(subject, self.value, to_nats(headers, self.key))
        # term, not ack: the message is settled for good and JetStream records why
        # (a MSG_TERMINATED advisory monitoring can watch)
        if self._claim("dead_letter"):
            await self._msg.term()

    def _live(self, action: str) -> bool:
        if self._settled:
            logger.debug("%s of an already settled message on %r ignored", action, self.topic)
            return False
        if self not in self._consumer._unsettled:
            logger.debug("%s after the consumer closed ignored (message went back)", action)
            return False
        return True

    def _claim(self, action: str) -> bool:
        if not self._live(action):
            self._settled = True
            return False
        self._settled = True
        self._consumer._settled(self)
        return True
