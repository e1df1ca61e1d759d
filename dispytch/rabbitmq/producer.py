"""`RabbitMQProducer`: publish with publisher confirms, persistent and mandatory by default."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import Any

from dispytch.backends.base import OutgoingMessage, Producer, mark_confirmed
from dispytch.credentials import masked, url_secrets
from dispytch.errors import BrokerUnavailableError, InvalidTopicNameError, ProducerError
from dispytch.loops import LoopBinding, other_loop_error
from dispytch.rabbitmq._amqp import AbstractConnection, AbstractExchange, aio_pika
from dispytch.rabbitmq._connect import connect
from dispytch.rabbitmq._errors import CONNECTION_ERRORS
from dispytch.rabbitmq._publish import publish_confirmed
from dispytch.rabbitmq.config import RabbitMQEventConfig
from dispytch.rabbitmq.headers import KEY_HEADER, TOPIC_HEADER, encode_key
from dispytch.rabbitmq.topology import DEFAULT_EXCHANGE, declare_exchange, routing_key_for

logger = logging.getLogger("dispytch.rabbitmq")


class RabbitMQProducer(Producer):
    """Publishes each message to an exchange and returns once the broker confirmed it.

    `RabbitMQProducer(exchanges)` publishes through exchanges you declared yourself (one, or a
    list to choose from by `RabbitMQEventConfig.exchange`); their channel must have publisher
    confirms (aio-pika's default). The routing key is the topic unchanged, as in Dispytch 0.10.
    `RabbitMQProducer.create(url)` connects by itself and declares the topic exchange.
    """

    def __init__(
        self,
        exchanges: AbstractExchange | Sequence[AbstractExchange] = (),
        timeout: float | None = None,
        *,
        mandatory: bool = True,
        persistent: bool = True,
        topic_delimiter: str | None = None,
    ) -> None:
        """`timeout` bounds every send that is not given one. `mandatory` makes an unroutable
        message raise `UnroutableMessageError`; `persistent` sets delivery mode 2. With
        `topic_delimiter`, that delimiter in a topic becomes "." in its routing key."""
        exchange_list = list(exchanges) if isinstance(exchanges, Sequence) else [exchanges]
        self._exchanges: dict[str, AbstractExchange] = {e.name: e for e in exchange_list}
        self._default: AbstractExchange | None = (
            exchange_list[0] if len(exchange_list) == 1 else None
        )
        self._timeout = timeout
        self._mandatory = mandatory
        self._delivery_mode = (
            aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
        )
        self._delimiter = topic_delimiter
        self._url: str | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._exchange_name = DEFAULT_EXCHANGE
        self._connect_timeout = 10.0
        self._reconnect_interval = 2.0
        self._connection: AbstractConnection | None = None
        self._start_lock = asyncio.Lock()
        #: the loop of our connection, or of the first send through the caller's exchanges
        self._loop = LoopBinding()

    @classmethod
    def create(
        cls,
        url: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        timeout: float | None = None,
        mandatory: bool = True,
        persistent: bool = True,
        topic_delimiter: str | None = ":",
        connect_timeout: float = 10.0,
        reconnect_interval: float = 2.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> RabbitMQProducer:
        """A producer that connects to `url` on start and publishes to the durable topic
        exchange `exchange` (declared if missing), routing key = topic with `topic_delimiter`
        (the listener's, ":" by default) replaced by ".".

        TLS: an `amqps://` URL, with `ssl_context` (or the URL's `cafile`, `certfile`,
        `keyfile`). A wrong password or a failed certificate check raises
        `BrokerAuthenticationError` or `BrokerTLSError` on start (docs/security.md)."""
        producer = cls(
            timeout=timeout,
            mandatory=mandatory,
            persistent=persistent,
            topic_delimiter=topic_delimiter,
        )
        producer._url = url
        producer._ssl_context = ssl_context
        producer._exchange_name = exchange
        producer._connect_timeout = connect_timeout
        producer._reconnect_interval = reconnect_interval
        return producer

    async def start(self) -> None:
        if self._loop.other_loop() is not None:
            self._leave_other_loop()
        if self._url is None:
            if self._loop.loop is None:
                self._loop.bind()
            return
        if self._connection is not None:
            return
        async with self._start_lock:
            if self._connection is not None:
                return
            connection = await connect(
                self._url,
                ssl_context=self._ssl_context,
                timeout=self._connect_timeout,
                reconnect_interval=self._reconnect_interval,
                what="the RabbitMQ producer",
            )
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await declare_exchange(channel, self._exchange_name)
            except Exception as error:
                await connection.close()
                secrets = url_secrets(self._url)
                if isinstance(error, CONNECTION_ERRORS):
                    raise BrokerUnavailableError(
                        masked(f"RabbitMQ went away: {error!r}", secrets)
                    ) from error
                what = f"cannot declare the exchange {self._exchange_name!r}: {error!r}"
                raise ProducerError(masked(what, secrets)) from error
            self._exchanges = {exchange.name: exchange}
            self._default = exchange
            self._connection = connection
            self._loop.bind()

    def check_topic(self, topic: str) -> None:
        check_routing_key(topic, routing_key_for(topic, self._delimiter))

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        config = message.config if isinstance(message.config, RabbitMQEventConfig) else None
        routing_key = (config.routing_key if config else None) or routing_key_for(
            message.topic, self._delimiter
        )
        check_routing_key(message.topic, routing_key)
        if not self._ready_here():
            await self.start()
        exchange = self._exchange_for(config)
        mandatory = (
            self._mandatory if config is None or config.mandatory is None else config.mandatory
        )
        await publish_confirmed(
            exchange,
            self._amqp_message(message, config),
            routing_key,
            mandatory=mandatory,
            timeout=self._timeout if timeout is None else timeout,
            topic=message.topic,
        )

    async def send_many(
        self, messages: Sequence[OutgoingMessage], *, timeout: float | None = None
    ) -> None:
        """Publish all messages at once and wait for every confirm. Not atomic: when one
        fails, the others may still have been stored; the error names those the broker
        confirmed (`mark_confirmed`)."""
        for message in messages:
            self.check_topic(message.topic)
        await self.start()
        results = await asyncio.gather(
            *(self.send(message, timeout=timeout) for message in messages),
            return_exceptions=True,
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is None:
            return
        if isinstance(failure, Exception):
            confirmed = [m for m, r in zip(messages, results, strict=True) if r is None]
            mark_confirmed(failure, confirmed)
        raise failure

    async def close(self) -> None:
        old_loop = self._loop.other_loop()
        if old_loop is not None:
            if not old_loop.is_closed():
                raise other_loop_error(self._what(), old_loop)
            self._forget_connection()  # its loop is gone, and with it any way to close it
            return
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()
            if self._url is not None:
                self._exchanges, self._default = {}, None
                self._loop.clear()  # the next connection may belong to another loop

    def _ready_here(self) -> bool:
        """Started in this event loop: `send` needs no `start()` (checked without awaiting)."""
        return self._loop.loop is asyncio.get_running_loop() and (
            self._url is None or self._connection is not None
        )

    def _leave_other_loop(self) -> None:
        """In another event loop than the connection's: forget a connection of our own whose
        loop is closed (`start()` connects again); refuse anything else at once."""
        old_loop = self._loop.other_loop()
        assert old_loop is not None
        if self._url is None or not old_loop.is_closed():
            raise other_loop_error(self._what(), old_loop)
        self._forget_connection()

    def _forget_connection(self) -> None:
        self._loop.clear()
        self._start_lock = asyncio.Lock()
        if self._url is not None:
            self._connection = None
            self._exchanges, self._default = {}, None

    def _what(self) -> str:
        if self._url is None:
            return "the exchange (and its channel) this RabbitMQProducer publishes to"
        return "this RabbitMQProducer's connection"

    def _exchange_for(self, config: RabbitMQEventConfig | None) -> AbstractExchange:
        name = config.exchange if config else None
        if name is None:
            if self._default is None:
                raise ProducerError(
                    "several exchanges to choose from (or none): name one with "
                    "RabbitMQEventConfig(exchange=...)"
                    if self._exchanges
                    else "the producer has no exchange: was it closed?"
                )
            return self._default
        try:
            return self._exchanges[name]
        except KeyError:
            raise ProducerError(
                f"no exchange {name!r} among the producer's {sorted(self._exchanges)}"
            ) from None

    def _amqp_message(
        self, message: OutgoingMessage, config: RabbitMQEventConfig | None
    ) -> aio_pika.Message:
        headers: dict[str, Any] = dict(message.headers)
        if config is not None:
            headers.update(config.headers)
        headers[TOPIC_HEADER] = message.topic
        if message.key is not None:
            headers[KEY_HEADER] = encode_key(message.key)
        timestamp = None if message.timestamp_ms is None else message.timestamp_ms / 1000
        if config is None:
            # the same message as with a default RabbitMQEventConfig(), without passing its
            # nine empty properties (aio-pika's keyword parsing costs ~1% of an awaited emit)
            return aio_pika.Message(
                message.value,
                headers=headers,
                delivery_mode=self._delivery_mode,
                timestamp=timestamp,
            )
        return aio_pika.Message(
            message.value,
            headers=headers,
            content_type=config.content_type,
            content_encoding=config.content_encoding,
            delivery_mode=config.delivery_mode or self._delivery_mode,
            priority=config.priority,
            correlation_id=config.correlation_id,
            reply_to=config.reply_to,
            expiration=config.expiration,
            message_id=config.message_id,
            timestamp=timestamp,
            type=config.type,
            app_id=config.app_id,
        )


#: AMQP carries a routing key as a short string
MAX_ROUTING_KEY_BYTES = 255


def check_routing_key(topic: str, routing_key: str) -> None:
    """Raise `InvalidTopicNameError` when RabbitMQ cannot carry the routing key (more than 255
    bytes in UTF-8): at once, rather than as a closed channel."""
    if len(routing_key) * 4 <= MAX_ROUTING_KEY_BYTES:
        return  # short enough whatever its characters (UTF-8 takes 4 bytes at most for one)
    size = len(routing_key.encode())
    if size > MAX_ROUTING_KEY_BYTES:
        raise InvalidTopicNameError(
            f"RabbitMQ cannot carry the topic {topic[:60]!r}...: its routing key has {size} "
            f"bytes; RabbitMQ routing keys hold at most {MAX_ROUTING_KEY_BYTES} bytes (UTF-8)"
        )
