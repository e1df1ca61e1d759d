"""Where dead letters go, and the producer that stores them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from dispytch.backends.base import DLQ_HEADER_PREFIX, DeadLetterReason
from dispytch.kafka._errors import (
    KAFKA_EXCEPTIONS,
    SEND_EXCEPTIONS,
    connection_error,
    producer_error,
)
from dispytch.kafka.config import header_bytes

DEFAULT_DEAD_LETTER_SUFFIX = ".dlq"

#: options of a consumer that also apply to the dead-letter producer it creates
CONNECTION_OPTIONS = frozenset(
    {
        "client_id",
        "request_timeout_ms",
        "retry_backoff_ms",
        "metadata_max_age_ms",
        "connections_max_idle_ms",
        "api_version",
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)


class DeadLetterPublisher:
    """Stores dead letters with an aiokafka producer: one given by the user (never stopped
    here), or one created on first use from connection options (stopped by `close()`)."""

    def __init__(
        self,
        topic_for: Callable[[str], str],
        producer: AIOKafkaProducer | None,
        options: Callable[[], dict[str, Any]],
        timeout: float,
    ) -> None:
        self.topic_for = topic_for
        self._producer = producer
        self._options = options
        self._owned: AIOKafkaProducer | None = None
        self._timeout = timeout
        self._lock = asyncio.Lock()

    async def publish(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: tuple[tuple[str, bytes | None], ...],
        reason: DeadLetterReason,
    ) -> None:
        """Store the record in the dead-letter topic of `topic`; return on the broker's ack."""
        target = self.topic_for(topic)
        kept = [
            (name, b"" if item is None else item)
            for name, item in headers
            if not name.startswith(DLQ_HEADER_PREFIX)
        ]
        kept.extend((name, header_bytes(text)) for name, text in reason.to_headers().items())
        producer = await self._ready()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(target, value=value, key=key, headers=kept), self._timeout
            )
        except SEND_EXCEPTIONS as exc:
            raise producer_error(exc, target) from exc

    async def close(self) -> None:
        owned, self._owned = self._owned, None
        if owned is not None:
            with contextlib.suppress(*KAFKA_EXCEPTIONS):
                await owned.stop()

    async def _ready(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._owned is None:
                producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **self._options())
                try:
                    await producer.start()
                except KAFKA_EXCEPTIONS as exc:
                    await producer.stop()
                    raise connection_error(exc, "starting the dead-letter producer") from exc
                self._owned = producer
            return self._owned


def dead_letter_topic_namer(
    topic: Callable[[str], str] | None, suffix: str
) -> Callable[[str], str]:
    if topic is not None:
        return topic
    return lambda original: original + suffix
