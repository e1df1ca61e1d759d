"""`RedisStreamDelivery`: one stream entry read by a consumer group, settled with XACK.

- `ack()`: XACK.
- `nack()`: the entry stays pending, made claimable at once (XCLAIM with a large IDLE, no
  count increment); the group's next claim takes it, which counts the delivery.
- `nack(delay=)`, `retry_later()`: a copy waits in the group's sorted set and is XACKed in the
  same MULTI transaction (see `dispytch.redis._scripts` for how it comes back).
- `dead_letter()`: XADD to `<topic>.dlq` and XACK in one MULTI transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from dispytch.backends.base import Delivery
from dispytch.redis._acks import AckBatcher
from dispytch.redis._client import CONNECTION_ERRORS, unavailable
from dispytch.redis._layout import (
    GROUP_HEADER,
    HEADERS_FIELD,
    KEY_FIELD,
    TOPIC_FIELD,
    VALUE_FIELD,
    dead_letter_stream,
    decode_headers,
    delayed_copy,
    delayed_set,
    encode_fields,
    text,
)

logger = logging.getLogger("dispytch.redis")


class GroupMember(Protocol):
    """What a delivery uses of its consumer (`RedisStreamConsumer` is one): a protocol, so
    that this module does not import the consumer's, which creates deliveries."""

    client: Any
    group: str
    name: str
    closed: bool
    give_back_idle_ms: int
    acks: AckBatcher

    def settled(self, delivery: RedisStreamDelivery) -> bool: ...

    def claim_soon(self) -> None: ...

    def delayed_stored(self, due_unix_ms: int) -> None: ...


class RedisStreamDelivery(Delivery):
    __slots__ = ("_consumer", "_count", "_settled", "entry_id", "stream")

    def __init__(
        self,
        consumer: GroupMember,
        stream: str,
        entry_id: bytes,
        fields: Mapping[bytes, bytes],
        count: int | None,
        retry: bool = False,
    ) -> None:
        self._consumer = consumer
        self._count = count
        self._settled = False
        self.stream = stream
        self.entry_id = entry_id
        topic = text(fields.get(TOPIC_FIELD)) if retry else None
        self.topic = topic or stream
        self.value = bytes(fields.get(VALUE_FIELD) or b"")
        self.key = fields.get(KEY_FIELD)
        self.headers = decode_headers(fields.get(HEADERS_FIELD))
        # one stream hands a consumer its entries in order: the listener keeps that order
        # among equal keys (claims and competing consumers can reorder, see the docs)
        self.ordering_key = self.key
        self.metadata = {
            "stream": stream,
            "entry_id": entry_id.decode(),
            "group": consumer.group,
            "consumer": consumer.name,
            "delivery_count": count,
            "redelivered": count is not None and count > 1,
        }

    @property
    def delivery_count(self) -> int | None:
        count = self._count
        return count if isinstance(count, int) and count >= 1 else None

    async def ack(self) -> None:
        if self._claim("ack"):
            consumer = self._consumer
            try:
                await consumer.acks.ack(consumer.client, self.stream, self.entry_id)
            except CONNECTION_ERRORS as error:
                raise unavailable(f"could not ack entry {self.entry_id!r}", error) from error

    async def nack(self, *, delay: float | None = None) -> None:
        if delay is not None and delay > 0:
            await self.retry_later(delay, self.headers)
            return
        if not self._claim("nack"):
            return
        consumer = self._consumer
        await self._run(
            "nack",
            lambda client: client.xclaim(
                self.stream,
                self._group,
                consumer.name,
                0,
                [self.entry_id],
                idle=consumer.give_back_idle_ms,
                justid=True,
            ),
        )
        consumer.claim_soon()

    async def retry_later(self, delay: float, headers: Mapping[str, str]) -> None:
        if self._settled or self._consumer.closed:
            self._claim("retry_later")
            return
        group = self._group
        member = uuid.uuid4().hex
        due_ms = int((time.time() + max(delay, 0.0)) * 1000)
        fields = encode_fields(self.value, self.key, headers, self.topic)

        async def store(client: Any) -> Any:
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(delayed_copy(group, member), mapping=fields)
                pipe.zadd(delayed_set(group), {member: due_ms})
                pipe.xack(self.stream, group, self.entry_id)
                return await pipe.execute()

        await self._run("retry later", store)
        self._claim("retry_later")
        self._consumer.delayed_stored(due_ms)

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        if self._settled or self._consumer.closed:
            self._claim("dead_letter")
            return
        group = self._group
        fields = encode_fields(self.value, self.key, {**headers, GROUP_HEADER: group})

        async def store(client: Any) -> Any:
            async with client.pipeline(transaction=True) as pipe:
                pipe.xadd(dead_letter_stream(self.topic), fields)
                pipe.xack(self.stream, group, self.entry_id)
                return await pipe.execute()

        await self._run("dead-letter", store)
        self._claim("dead_letter")

    @property
    def _group(self) -> str:
        return self._consumer.group

    def _claim(self, action: str) -> bool:
        if self._settled:
            logger.debug("%s of an already settled entry of %r ignored", action, self.stream)
            return False
        self._settled = True
        if not self._consumer.settled(self):
            logger.debug("%s after the consumer closed ignored (the entry went back)", action)
            return False
        return True

    async def _run(self, what: str, command: Any) -> None:
        try:
            await command(self._consumer.client)
        except CONNECTION_ERRORS as error:
            raise unavailable(
                f"could not {what} entry {self.entry_id!r} of {self.stream!r}", error
            ) from error
