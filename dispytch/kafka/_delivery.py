"""`KafkaDelivery`: one consumed record, settled through the consumer that handed it out."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

from dispytch.backends.base import DeadLetterReason, Delivery
from dispytch.kafka._offsets import PartitionOffsets
from dispytch.kafka._retry import RETRY_HEADERS, RETRY_TOPIC_HEADER

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

    from dispytch.kafka.consumer import KafkaConsumer

RawHeaders = tuple[tuple[str, bytes | None], ...]


class KafkaDelivery(Delivery):
    """A record handed out by `KafkaConsumer.receive()`.

    `ordering_key` is `(topic, partition, key)` for keyed records and None for records without
    a key: Kafka keeps order per partition, but Dispytch promises order only among events that
    share a key, so keyless events may be handled concurrently.
    """

    __slots__ = ("_consumer", "_offsets", "_raw_headers", "_settled", "offset", "partition")

    def __init__(
        self,
        consumer: KafkaConsumer,
        record: ConsumerRecord[bytes, bytes],
        offsets: PartitionOffsets,
    ) -> None:
        self._consumer = consumer
        self._offsets = offsets
        self._settled = False
        raw_headers: RawHeaders = tuple(record.headers or ())
        self._raw_headers = raw_headers
        self.topic = record.topic
        self.partition: int = record.partition
        self.offset: int = record.offset
        self.value = record.value if record.value is not None else b""
        self.key = record.key
        self.headers = _decode_headers(raw_headers)
        self.ordering_key: Hashable | None = (
            None if record.key is None else (record.topic, record.partition, record.key)
        )
        self.metadata: Mapping[str, Any] = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": record.key,
        }

    @classmethod
    def retried(
        cls,
        consumer: KafkaConsumer,
        record: ConsumerRecord[bytes, bytes],
        offsets: PartitionOffsets,
    ) -> KafkaDelivery:
        """A record of the retry topic, presented as the event of its original topic: `topic`
        is that topic, and the retry headers are gone. `metadata` says where the record is
        stored (`retry_topic`, `partition`, `offset`); settling it commits there."""
        delivery = cls(consumer, record, offsets)
        original = delivery.headers.get(RETRY_TOPIC_HEADER)
        if not original:
            return delivery  # not made by retry_later: left as it is
        delivery._raw_headers = tuple(
            (name, value) for name, value in delivery._raw_headers if name not in RETRY_HEADERS
        )
        delivery.headers = _decode_headers(delivery._raw_headers)
        delivery.topic = original
        delivery.metadata = {**delivery.metadata, "topic": original, "retry_topic": record.topic}
        return delivery

    @property
    def raw_headers(self) -> RawHeaders:
        """The record's headers as Kafka stored them."""
        return self._raw_headers

    async def ack(self) -> None:
        if self._claim():
            self._consumer._settle(self._offsets, self.offset)

    async def nack(self, *, delay: float | None = None) -> None:
        if self._claim():
            self._consumer._redeliver(self._offsets, self.offset, delay)

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        if self._settled:
            return
        await self._consumer._store_retry(self, delay, headers)
        if self._claim():
            self._consumer._settle(self._offsets, self.offset)

    async def dead_letter(self, reason: DeadLetterReason) -> None:
        if self._settled:
            return
        await self._consumer._store_dead_letter(self, reason)
        if self._claim():
            self._consumer._settle(self._offsets, self.offset)

    def _claim(self) -> bool:
        """True the first time the delivery is settled; later calls do nothing."""
        if self._settled:
            return False
        self._settled = True
        return True

    def __repr__(self) -> str:
        return f"<KafkaDelivery {self.topic}[{self.partition}]@{self.offset}>"


def _decode_headers(raw: RawHeaders) -> dict[str, str]:
    return {name: "" if value is None else value.decode("utf-8", "replace") for name, value in raw}
