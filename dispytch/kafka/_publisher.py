"""The producer a consumer stores records with (dead letters, delayed retries)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from dispytch.kafka._client import quiet_stop
from dispytch.kafka._errors import KAFKA_EXCEPTIONS, SEND_EXCEPTIONS, producer_error
from dispytch.kafka._secure import start_error

RawHeaders = Sequence[tuple[str, bytes]]


class RecordPublisher:
    """Stores records with an aiokafka producer: one given by the user (never stopped here),
    or one created on first use from connection options (stopped by `close()`)."""

    def __init__(
        self,
        producer: AIOKafkaProducer | None,
        options: Callable[[], dict[str, Any]],
        timeout: float,
    ) -> None:
        self._producer = producer
        self._options = options
        self._owned: AIOKafkaProducer | None = None
        self._timeout = timeout
        self._lock = asyncio.Lock()

    async def publish(
        self, topic: str, value: bytes, key: bytes | None, headers: RawHeaders
    ) -> None:
        """Store one record in `topic`; return on the broker's ack."""
        producer = await self._ready()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(topic, value=value, key=key, headers=list(headers)),
                self._timeout,
            )
        except SEND_EXCEPTIONS as exc:
            raise producer_error(exc, topic) from exc

    async def close(self) -> None:
        owned, self._owned = self._owned, None
        if owned is not None:
            await quiet_stop(owned)

    async def _ready(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._owned is None:
                producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **self._options())
                try:
                    await producer.start()
                except KAFKA_EXCEPTIONS as exc:
                    await quiet_stop(producer)
                    raise await start_error(
                        exc, self._options(), "starting the consumer's producer"
                    ) from exc
                self._owned = producer
            return self._owned
