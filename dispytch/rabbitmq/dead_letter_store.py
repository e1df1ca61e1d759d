"""`RabbitMQDeadLetterStore`: the dead letters in a RabbitMQ dead-letter queue.

The RabbitMQ backend routes every dead letter, of every topic and group, through the exchange
`<exchange>.dlx` into the queue `<exchange>.dlq` (`dispytch.dlq` by default), with the original
routing key; the topic is in the `dispytch-topic` header and the group's queue in
`dispytch-dlq-group`. Reading takes the messages with basic.get without acknowledging them and
gives them all back (basic.nack, requeue) when the read ends, so the queue is left as it was.
Replay publishes to `<exchange>` with the original routing key, waits for the confirm, and
only then acks the dead letter.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

from dispytch.backends.base import OutgoingMessage
from dispytch.credentials import masked_url
from dispytch.deadletters.errors import DeadLetterSourceError, NotReplayableError
from dispytch.deadletters.letter import DeadLetter, decode_envelope
from dispytch.deadletters.store import DeadLetterStore
from dispytch.deadletters.url import StoreOptions, StoreUsageError
from dispytch.errors import BrokerUnavailableError, UnroutableMessageError
from dispytch.rabbitmq._amqp import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    aiormq,
)
from dispytch.rabbitmq._connect import connect
from dispytch.rabbitmq._errors import CONNECTION_ERRORS
from dispytch.rabbitmq.config import RabbitMQEventConfig
from dispytch.rabbitmq.headers import GROUP_HEADER, KEY_HEADER, TOPIC_HEADER, decode_key
from dispytch.rabbitmq.headers import to_text_headers as application_headers
from dispytch.rabbitmq.producer import RabbitMQProducer
from dispytch.rabbitmq.topology import DEFAULT_EXCHANGE, Topology
from dispytch.reasons import DeadLetterReason

DEFAULT_DEAD_LETTER_QUEUE = Topology(DEFAULT_EXCHANGE).dead_letter_queue


class RabbitMQDeadLetterStore(DeadLetterStore):
    """Dead letters of the queue `queue` (default `dispytch.dlq`).

    Replays go to the topic exchange `exchange`; by default the queue's name without its
    `.dlq` suffix (the backend's naming: `RabbitMQConsumer.create(url, group, exchange=X)`
    dead-letters into `X.dlq`). TLS: an `amqps://` URL, with `ssl_context` (or the URL's
    `cafile`, `certfile`, `keyfile`).
    """

    holds_every_topic = True

    def __init__(
        self,
        url: str,
        queue: str = DEFAULT_DEAD_LETTER_QUEUE,
        *,
        exchange: str | None = None,
        publish_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        get_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if exchange is None and queue.endswith(".dlq"):
            exchange = queue[: -len(".dlq")]
        self.queue = queue
        self.exchange = exchange
        self.source = f"RabbitMQ queue {queue!r}"
        self._url = url
        self._ssl_context = ssl_context
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._get_timeout = get_timeout
        self._connection: AbstractConnection | None = None
        self._producer: RabbitMQProducer | None = None

    def __repr__(self) -> str:
        return f"RabbitMQDeadLetterStore({masked_url(self._url)!r}, {self.queue!r})"

    # -- DeadLetterStore ---------------------------------------------------------------------

    async def read(self, *, include_replayed: bool = False) -> AsyncGenerator[DeadLetter, None]:
        connection = await self._ready()
        channel: AbstractChannel = await connection.channel(publisher_confirms=False)
        held: list[AbstractIncomingMessage] = []
        try:
            queue, count = await self._declare(channel)
            for index in range(count):
                try:
                    message = await queue.get(no_ack=False, fail=False, timeout=self._get_timeout)
                except CONNECTION_ERRORS as error:
                    raise BrokerUnavailableError(f"reading {self.queue!r}: {error!r}") from error
                if message is None:
                    break
                held.append(message)
                yield self._letter(index, message)
        finally:
            await _give_back(channel, held)

    async def pending(self) -> int:
        connection = await self._ready()
        channel = await connection.channel(publisher_confirms=False)
        try:
            _, count = await self._declare(channel)
        finally:
            if not channel.is_closed:
                await channel.close()
        return count

    async def replay(self, letter: DeadLetter) -> None:
        message: AbstractIncomingMessage = letter.handle
        if message.processed:
            raise NotReplayableError(f"{letter.location} was settled already")
        topic = letter.original_topic
        if topic is None:
            raise NotReplayableError(f"{letter.location} has no dispytch-dlq-original-topic")
        producer = await self._ready_producer()
        try:
            await producer.send(self._outgoing(letter, message, topic))
        except UnroutableMessageError as error:
            raise NotReplayableError(f"{letter.location}: {error}") from error
        try:
            await message.ack()
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailableError(
                f"{letter.location} was replayed but could not be removed (it is replayed "
                f"again next time): {error!r}"
            ) from error

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        connection, self._connection = self._connection, None
        if producer is not None:
            await producer.close()
        if connection is not None:
            await connection.close()

    # -- internals ---------------------------------------------------------------------------

    async def _ready(self) -> AbstractConnection:
        if self._connection is None:
            self._connection = await connect(
                self._url,
                ssl_context=self._ssl_context,
                timeout=self._connect_timeout,
                what="the RabbitMQ dead-letter store",
            )
        return self._connection

    async def _ready_producer(self) -> RabbitMQProducer:
        if self.exchange is None:
            raise NotReplayableError(
                f"which exchange do letters of {self.queue!r} go back to? Name it (exchange=...)"
            )
        if self._producer is None:
            producer = RabbitMQProducer.create(
                self._url,
                exchange=self.exchange,
                timeout=self._publish_timeout,
                topic_delimiter=None,
                connect_timeout=self._connect_timeout,
                ssl_context=self._ssl_context,
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def _declare(self, channel: AbstractChannel) -> tuple[Any, int]:
        try:
            queue = await channel.declare_queue(self.queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity as error:
            raise DeadLetterSourceError(f"RabbitMQ has no queue {self.queue!r}") from error
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailableError(f"RabbitMQ went away: {error!r}") from error
        result = queue.declaration_result
        return queue, int(result.message_count or 0)

    def _letter(self, index: int, message: AbstractIncomingMessage) -> DeadLetter:
        raw = message.headers or {}
        headers = application_headers(raw)
        reason = DeadLetterReason.from_headers(headers)
        topic = raw.get(TOPIC_HEADER)
        if isinstance(topic, bytes | bytearray):
            topic = bytes(topic).decode(errors="replace")
        envelope, envelope_error = decode_envelope(
            message.body, _with_content_type(headers, message)
        )
        timestamp = message.timestamp
        return DeadLetter(
            index=index,
            location=f"{self.queue}#{index}",
            value=message.body,
            key=decode_key(raw.get(KEY_HEADER)),
            headers=headers,
            reason=reason,
            envelope=envelope,
            envelope_error=envelope_error,
            timestamp_ms=int(timestamp.timestamp() * 1000) if timestamp is not None else None,
            metadata={
                "queue": self.queue,
                "routing_key": message.routing_key,
                "topic": topic,
                "group": headers.get(GROUP_HEADER),
                "group_name": self._group_name(headers.get(GROUP_HEADER)),
                "message_id": message.message_id,
                "content_type": message.content_type,
            },
            handle=message,
        )

    def _group_name(self, queue: str | None) -> str | None:
        """The consumer group whose queue (`<exchange>.<group>`) dead-lettered a letter."""
        prefix = f"{self.exchange}." if self.exchange else None
        if queue is not None and prefix is not None and queue.startswith(prefix):
            return queue[len(prefix) :]
        return queue

    def _outgoing(
        self, letter: DeadLetter, message: AbstractIncomingMessage, topic: str
    ) -> OutgoingMessage:
        config = RabbitMQEventConfig(
            routing_key=message.routing_key or None,
            priority=message.priority,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            message_id=message.message_id,
            type=message.type,
            app_id=message.app_id,
        )
        return OutgoingMessage(
            topic=topic,
            value=letter.value,
            key=letter.key,
            headers=letter.replay_headers(),
            config=config,
            timestamp_ms=letter.timestamp_ms,
        )


def _with_content_type(headers: dict[str, str], message: AbstractIncomingMessage) -> dict[str, str]:
    if "content-type" not in headers and message.content_type:
        return {**headers, "content-type": message.content_type}
    return headers


async def _give_back(channel: AbstractChannel, held: list[AbstractIncomingMessage]) -> None:
    """Requeue every message of this read that was not acked, then close the channel."""
    try:
        unsettled = [m for m in held if not m.processed]
        if unsettled and not channel.is_closed:
            # one basic.nack(multiple) up to the newest unsettled tag requeues all of them
            await unsettled[-1].nack(multiple=True, requeue=True)
    except CONNECTION_ERRORS:
        pass  # a closed channel gives every unacked message back by itself
    finally:
        if not channel.is_closed:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await channel.close()


def open_from_url(broker_url: str, options: StoreOptions) -> RabbitMQDeadLetterStore:
    """The store of `amqp://user:password@host:5672/vhost` or `amqps://...` (the `amqp` and
    `amqps` entries of the `dispytch.dead_letter_stores` table): the dead-letter queue
    `options.queue` (default `dispytch.dlq`), replayed through `options.exchange`. The queue
    holds every topic's letters: `source_topic` is left to the caller's filter."""
    options.refuse("topic", because="--topic is for Kafka; RabbitMQ takes --queue")
    options.refuse("replay_group", because="--replay-group is for Kafka")
    options.refuse("sasl_mechanism", because="--sasl-mechanism is for Kafka")
    try:
        parts = urlsplit(broker_url)
        _ = parts.port
    except ValueError as error:
        raise StoreUsageError(f"invalid broker URL {masked_url(broker_url)!r}: {error}") from None
    if options.ssl_context is not None and parts.scheme.lower() != "amqps":
        raise StoreUsageError(
            "TLS settings (a CA, client certificate or key file) need a TLS URL: "
            "amqps://host:port/"
        )
    return RabbitMQDeadLetterStore(
        _with_credentials(broker_url, options.username, options.password),
        options.queue or DEFAULT_DEAD_LETTER_QUEUE,
        exchange=options.exchange,
        ssl_context=options.ssl_context,
    )


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    """`url` with `username` / `password` in place of its own (percent-encoded)."""
    if username is None and password is None:
        return url
    from yarl import URL  # a dependency of aio-pika

    parsed = URL(url)
    user = username if username is not None else parsed.user
    if user is None:
        raise StoreUsageError("a password for RabbitMQ needs a user name")
    given = password if password is not None else parsed.password
    return str(parsed.with_user(user).with_password(given))
