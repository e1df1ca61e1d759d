"""`KafkaDelivery`: one consumed record, settled through the consumer that handed it out.

Built for every record, so it does as little as it can: headers are decoded only when the
record has some (the others share one empty, read-only mapping), `metadata` is a view of the
record rather than a dict, and `ack()` settles the offset itself instead of going through the
consumer and the committer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from dispytch.backends.base import Delivery
from dispytch.backends.lazy_metadata import LazyMetadata
from dispytch.kafka._offsets import PartitionOffsets
from dispytch.kafka._retry import RETRY_HEADERS, RETRY_TOPIC_HEADER

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

    from dispytch.kafka._commit import OffsetCommitter

log = logging.getLogger("dispytch.kafka")

RawHeaders = tuple[tuple[str, bytes | None], ...]


class RecordOwner(Protocol):
    """What a delivery settles through besides its committer: the consumer that handed it out
    (a protocol, so that this module does not import the consumer's)."""

    #: whether the consumer reads `topic` as an original topic (a retry copy may only claim one)
    reads_topic: Callable[[str], bool]

    def _redeliver(self, offsets: PartitionOffsets, offset: int, delay: float | None) -> None: ...

    async def _store_retry(
        self, delivery: KafkaDelivery, delay: float, headers: Mapping[str, str]
    ) -> None: ...

    async def _store_dead_letter(
        self, delivery: KafkaDelivery, headers: Mapping[str, str]
    ) -> None: ...


#: the headers of every record that has none
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class KafkaDelivery(Delivery):
    """A record handed out by `KafkaConsumer.receive()`.

    `ordering_key` is `(topic, partition, key)` for keyed records and None for records without
    a key: Kafka keeps order per partition, but Dispytch promises order only among events that
    share a key, so keyless events may be handled concurrently.
    """

    __slots__ = (
        "_committer",
        "_consumer",
        "_offsets",
        "_raw_headers",
        "_settled",
        "offset",
        "partition",
    )

    def __init__(
        self,
        consumer: RecordOwner,
        record: ConsumerRecord[bytes, bytes],
        offsets: PartitionOffsets,
        committer: OffsetCommitter,
    ) -> None:
        self._consumer = consumer
        self._committer = committer
        self._offsets = offsets
        self._settled = False
        raw_headers: RawHeaders = record.headers
        self._raw_headers = raw_headers
        self.topic = record.topic
        self.partition: int = record.partition
        self.offset: int = record.offset
        value = record.value
        self.value = b"" if value is None else value
        key = self.key = record.key
        self.headers = _decode_headers(raw_headers) if raw_headers else NO_HEADERS
        self.ordering_key: Hashable | None = (
            None if key is None else (record.topic, record.partition, key)
        )
        self.metadata: Mapping[str, Any] = RecordMetadata(record)

    @classmethod
    def retried(
        cls,
        consumer: RecordOwner,
        record: ConsumerRecord[bytes, bytes],
        offsets: PartitionOffsets,
        committer: OffsetCommitter,
    ) -> KafkaDelivery:
        """A record of the retry topic, presented as the event of its original topic: `topic`
        is that topic, and the retry headers are gone. `metadata` says where the record is
        stored (`retry_topic`, `partition`, `offset`); settling it commits there."""
        delivery = cls(consumer, record, offsets, committer)
        original = delivery.headers.get(RETRY_TOPIC_HEADER)
        if not original:
            return delivery  # not made by retry_later: left as it is
        if not consumer.reads_topic(original):
            # whoever wrote it cannot reach the handlers of a topic the group does not read
            log.warning(
                "ignored the %s header %r of %s[%s]@%s: this consumer does not read that topic",
                RETRY_TOPIC_HEADER,
                original[:200],
                record.topic,
                record.partition,
                record.offset,
            )
            return delivery
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
        self.ack_now()

    def ack_now(self) -> bool:
        # the offset is committed later (`_commit`): settling it is bookkeeping. Inlined (this
        # runs for every record): a revoked partition's offsets are no longer looked at, so
        # discarding from them does no harm
        if self._settled:
            return True
        self._settled = True
        self._offsets.in_flight.discard(self.offset)
        notify = self._committer.notify
        if notify is not None:
            notify()
        return True

    async def nack(self, *, delay: float | None = None) -> None:
        if not self._settled:
            self._settled = True
            self._consumer._redeliver(self._offsets, self.offset, delay)

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        if self._settled:
            return
        await self._consumer._store_retry(self, delay, headers)
        await self.ack()

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        if self._settled:
            return
        await self._consumer._store_dead_letter(self, headers)
        await self.ack()

    def __repr__(self) -> str:
        return f"<KafkaDelivery {self.topic}[{self.partition}]@{self.offset}>"


class RecordMetadata(LazyMetadata):
    """`topic`, `partition`, `offset`, `timestamp` and `key` of a record, read from it when
    asked for (most handlers never look)."""

    __slots__ = ("_record",)

    KEYS = ("topic", "partition", "offset", "timestamp", "key")
    _KEY_SET = frozenset(KEYS)

    def __init__(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self._record = record

    def __getitem__(self, name: str) -> Any:
        if name in self._KEY_SET:
            return getattr(self._record, name)
        raise KeyError(name)


def _decode_headers(raw: RawHeaders) -> dict[str, str]:
    return {name: "" if value is None else value.decode("utf-8", "replace") for name, value in raw}
