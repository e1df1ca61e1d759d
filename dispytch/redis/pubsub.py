"""The 0.10 names over Redis Pub/Sub: `RedisConsumer(pubsub)`, `RedisProducer(redis)`.

Pub/Sub is at most once: Redis keeps nothing. A message published while no subscriber
listens is gone, a consumer that crashes loses what it was handling, `nack()` cannot have it
delivered again, and there are no groups (every subscriber gets every message). Only the
value travels: keys and headers are dropped. For at-least-once delivery use the Streams
backend (`RedisStreamConsumer`, `RedisStreamProducer`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dispytch.backends.base import (
    Capabilities,
    Consumer,
    Delivery,
    OutgoingMessage,
    Producer,
    Subscription,
)
from dispytch.errors import ConsumerStoppedError, EmitTimeoutError, ProducerError
from dispytch.redis._client import CONNECTION_ERRORS, aioredis, unavailable
from dispytch.redis._layout import dead_letter_stream, encode_fields, text

logger = logging.getLogger("dispytch.redis")

PUBSUB_CAPABILITIES = Capabilities(
    persistent=False, ordered_per_key=False, consumer_groups=False, redelivers_on_nack=False
)
_POLL_SECONDS = 0.5


class RedisPubSubDelivery(Delivery):
    __slots__ = ("_consumer",)

    def __init__(self, consumer: RedisConsumer, channel: str, data: bytes) -> None:
        self._consumer = consumer
        self.topic = channel
        self.value = data
        self.key = None
        self.headers = {}
        self.ordering_key = None
        self.metadata = {"channel": channel}

    async def ack(self) -> None:
        pass  # Pub/Sub has no acknowledgements

    async def nack(self, *, delay: float | None = None) -> None:
        logger.warning("Redis Pub/Sub cannot redeliver: a message of %r is dropped", self.topic)

    async def dead_letter(self, headers: Mapping[str, str]) -> None:
        """Stored in the stream `<channel>.dlq`, like the Streams backend's dead letters, so
        that `dispytch dlq` reads them."""
        client = aioredis.Redis(connection_pool=self._consumer.pubsub.connection_pool)
        fields = encode_fields(self.value, None, headers)
        try:
            await client.xadd(dead_letter_stream(self.topic), fields)  # type: ignore[arg-type]
        except CONNECTION_ERRORS as error:
            raise unavailable("could not store a dead letter", error) from error


class RedisConsumer(Consumer):
    """Reads a `redis.asyncio` PubSub you created and subscribed (0.10's API): at most once."""

    capabilities = PUBSUB_CAPABILITIES

    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub
        self._stopped = False

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        self._stopped = False

    async def receive(self) -> Delivery:
        while not self._stopped:
            try:
                message = await self.pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=_POLL_SECONDS
                )
            except CONNECTION_ERRORS as error:
                raise unavailable(
                    "the Redis Pub/Sub consumer lost its connection", error
                ) from error
            if message is None or message.get("type") not in ("message", "pmessage"):
                if message is None:
                    await asyncio.sleep(0)
                continue
            data = message.get("data")
            if not isinstance(data, bytes | str):
                continue
            raw = data.encode() if isinstance(data, str) else data
            return RedisPubSubDelivery(self, text(message.get("channel")) or "", raw)
        raise ConsumerStoppedError("the Redis Pub/Sub consumer was stopped")

    async def stop(self) -> None:
        self._stopped = True

    async def close(self) -> None:
        await self.stop()  # the PubSub is yours: unsubscribe and close it yourself


class RedisProducer(Producer):
    """PUBLISHes each message's value to the channel named by its topic (0.10's API), on a
    `redis.asyncio.Redis` you created. Returns once Redis answered; nobody may be listening."""

    def __init__(self, redis: Any, timeout: float | None = None) -> None:
        self.redis = redis
        self._timeout = timeout

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        wait = self._timeout if timeout is None else timeout
        try:
            await asyncio.wait_for(self.redis.publish(message.topic, message.value), wait)
        except asyncio.TimeoutError as error:
            raise EmitTimeoutError(f"Redis did not answer within {wait} s") from error
        except CONNECTION_ERRORS as error:
            raise ProducerError(f"Redis is unavailable ({type(error).__name__})") from error

    async def close(self) -> None:
        pass  # the client is yours
