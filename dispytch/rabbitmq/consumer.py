"""`RabbitMQConsumer`: consume queues (the user's own, or one per group that it declares)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import Any

from dispytch.backends.base import Capabilities, Consumer, Delivery, ListenerNeeds, Subscription
from dispytch.credentials import masked, url_secrets
from dispytch.errors import BackendError, BrokerUnavailableError, ConsumerStoppedError
from dispytch.rabbitmq._acks import AckBatcher
from dispytch.rabbitmq._amqp import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    aiormq,
)
from dispytch.rabbitmq._connect import connect
from dispytch.rabbitmq._errors import CONNECTION_ERRORS
from dispytch.rabbitmq.delivery import RabbitMQDelivery, Settlement
from dispytch.rabbitmq.topology import (
    DEFAULT_EXCHANGE,
    Topology,
    declare_dead_letters,
    declare_exchange,
    declare_group_queue,
)

logger = logging.getLogger("dispytch.rabbitmq")

CAPABILITIES = Capabilities(
    persistent=True,
    ordered_per_key=False,
    consumer_groups=True,
    redelivers_on_nack=True,
    native_delay=True,
)

_STOP = object()
#: seconds a consumer cancel may take when stopping (the broker may be slow or going away)
_CANCEL_TIMEOUT = 5.0
#: ... and while its channel is closed: the cancel then only has to tell the robust queue to
#: forget the consumer (it does that first), the rest would wait for the connection
_CLOSED_CANCEL_TIMEOUT = 0.1
_CANCEL_ERRORS: tuple[type[BaseException], ...] = (asyncio.TimeoutError, *CONNECTION_ERRORS)


class RabbitMQConsumer(Consumer):
    """Hands out the messages of one or more RabbitMQ queues, acknowledged manually.

    `RabbitMQConsumer(*queues)` consumes queues you declared and bound yourself (Dispytch 0.10
    style); the topic of a message is its routing key. `RabbitMQConsumer.create(url, group)`
    connects by itself and declares the group's queue and its bindings from the listener's
    handler topics (see `dispytch.rabbitmq.topology`).
    """

    capabilities = CAPABILITIES

    def __init__(
        self,
        *queues: AbstractQueue,
        prefetch: int | None = None,
        dead_letter_exchange: str = "dispytch.dlx",
        dead_letter_queue: str | None = "dispytch.dlq",
        publish_timeout: float | None = 30.0,
    ) -> None:
        """Consume `queues`, declared by the caller on channels with publisher confirms.

        `prefetch` sets basic.qos on the queues' channels (None leaves it as configured).
        Dead letters go to the durable topic exchange `dead_letter_exchange`, declared on start
        with `dead_letter_queue` bound to it with "#" (None: declare no queue).
        """
        self._queues = list(queues)
        self._prefetch = prefetch
        self._prefetch_follows_listener = False
        self._dlx_name = dead_letter_exchange
        self._dlq_name = dead_letter_queue
        self._publish_timeout = publish_timeout
        self._buffer: asyncio.Queue[Any] = asyncio.Queue()
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._unsettled: dict[int, RabbitMQDelivery] = {}
        #: consumer tags being cancelled because a delivery reached them after stop()
        self._refusing: dict[str, asyncio.Future[None]] = {}
        self._settlement: Settlement | None = None
        self._acks: AckBatcher | None = None
        #: the listener's topic delimiter (from the subscriptions), for reading topics back
        self._delimiter: str | None = None
        self._started = False
        self._stopped = False
        # set by create(): the consumer owns its connection
        self._url: str | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._group: str | None = None
        self._topology = Topology()
        self._queue_arguments: dict[str, Any] | None = None
        self._connect_timeout = 10.0
        self._reconnect_interval = 2.0
        self._connection: AbstractConnection | None = None
        self._publish_channel: AbstractChannel | None = None

    def prepare(self, needs: ListenerNeeds) -> None:
        if self._prefetch_follows_listener:
            self._prefetch = needs.max_in_flight

    @classmethod
    def create(
        cls,
        url: str,
        group: str,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        prefetch: int | None = None,
        queue_arguments: dict[str, Any] | None = None,
        publish_timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        reconnect_interval: float = 2.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> RabbitMQConsumer:
        """A consumer for consumer group `group` that connects to `url` when started.

        It declares the durable topic exchange `exchange`, the durable queue
        `<exchange>.<group>` bound to every handler topic, and the dead-letter exchange
        `<exchange>.dlx` with the queue `<exchange>.dlq`. `prefetch` defaults to the
        listener's `max_concurrency` (100 outside a listener). `queue_arguments` are passed to
        the group queue's declaration (for example
        `{"x-queue-type": "quorum", "x-delivery-limit": 20}`).

        TLS: an `amqps://` URL, with `ssl_context` (or the URL's `cafile`, `certfile`,
        `keyfile`). A wrong password or a failed certificate check raises
        `BrokerAuthenticationError` or `BrokerTLSError` on start (docs/security.md).
        """
        topology = Topology(exchange)
        consumer = cls(
            prefetch=100 if prefetch is None else prefetch,
            dead_letter_exchange=topology.dead_letter_exchange,
            dead_letter_queue=topology.dead_letter_queue,
            publish_timeout=publish_timeout,
        )
        consumer._prefetch_follows_listener = prefetch is None
        consumer._url = url
        consumer._ssl_context = ssl_context
        consumer._group = group
        consumer._topology = topology
        consumer._queue_arguments = queue_arguments
        consumer._connect_timeout = connect_timeout
        consumer._reconnect_interval = reconnect_interval
        return consumer

    def describe(self) -> str:
        if self._url is None:
            return f"RabbitMQConsumer(queues={self.queue_names!r})"
        return (
            f"RabbitMQConsumer(group={self._group!r}, url={self._masked(self._url)!r}, "
            f"queue={self._topology.queue(self._group or '')!r})"
        )

    @property
    def group(self) -> str | None:
        """The consumer group given to `create()` (None for a consumer of the user's queues)."""
        return self._group

    @property
    def queue_names(self) -> list[str]:
        return [queue.name for queue in self._queues]

    async def start(self, subscriptions: Sequence[Subscription]) -> None:
        """Connect (when created by `create()`), declare, and consume. Starts again after
        `close()`, and after a start that failed or was cancelled (which closes what it had
        opened)."""
        if self._started:
            raise RuntimeError("the consumer was already started: close() it first")
        self._started = True
        self._delimiter = next((s.delimiter for s in subscriptions), None)
        # a fresh run: what an earlier run left (its stop marker, its tags) is not carried over
        self._stopped = False
        self._buffer = asyncio.Queue()
        self._consumers = []
        self._unsettled = {}
        self._refusing = {}
        self._settlement = None
        try:
            if self._url is not None:
                await self._declare_own(list(subscriptions))
            if not self._queues:
                raise ValueError("RabbitMQConsumer needs at least one queue")
            dlx_channel = self._publish_channel or self._queues[0].channel
            if not dlx_channel.publisher_confirms:
                raise ValueError(
                    "the first queue's channel must have publisher confirms: dead letters are "
                    "published on it and must be confirmed before the original is acked"
                )
            await self._set_qos()
            dlx = await declare_dead_letters(dlx_channel, self._dlx_name, self._dlq_name)
            # acks are batched on the channel this consumer opened (nobody else consumes there)
            self._acks = AckBatcher() if self._url is not None else None
            self._settlement = Settlement(
                dlx, dlx_channel, self._publish_timeout, self._forget, self._acks
            )
            for queue in self._queues:
                tag = await queue.consume(self._callback_for(queue))
                self._consumers.append((queue, tag))
        except BackendError:
            await self.close()
            raise
        except aiormq.exceptions.ChannelClosed as error:  # a declaration the broker refused
            await self.close()
            raise BackendError(
                self._masked(f"cannot start the RabbitMQ consumer: {error!r}")
            ) from error
        except CONNECTION_ERRORS as error:
            await self.close()
            raise BrokerUnavailableError(
                self._masked(f"cannot start the RabbitMQ consumer: {error!r}")
            ) from error
        except BaseException:  # cancelled (a stop while connecting), or a refused argument
            await self.close()
            raise

    def _masked(self, text: str) -> str:
        return masked(text, url_secrets(self._url or ""))

    async def _declare_own(self, subscriptions: list[Subscription]) -> None:
        assert self._url is not None
        assert self._group is not None
        connection = self._connection = await connect(
            self._url,
            ssl_context=self._ssl_context,
            timeout=self._connect_timeout,
            reconnect_interval=self._reconnect_interval,
            what="the RabbitMQ consumer",
        )
        channel: AbstractChannel = await connection.channel(publisher_confirms=True)
        exchange: AbstractExchange = await declare_exchange(channel, self._topology.exchange)
        queue = await declare_group_queue(
            channel,
            exchange,
            self._topology.queue(self._group),
            subscriptions,
            self._queue_arguments,
        )
        self._queues = [queue]
        # dead letters and delays are published on a channel of their own, so that flow
        # control on publishing never holds up consuming
        self._publish_channel = await connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

    async def _set_qos(self) -> None:
        if self._prefetch is None:
            return
        for channel in {id(q.channel): q.channel for q in self._queues}.values():
            await channel.set_qos(prefetch_count=self._prefetch)

    def _callback_for(self, queue: AbstractQueue) -> Any:
        name = queue.name

        async def on_message(message: AbstractIncomingMessage) -> None:
            if self._acks is not None:
                self._acks.delivered(message)
            if self._stopped:
                await self._refuse(queue, message)
                return
            self._buffer.put_nowait((message, name))

        return on_message

    async def _refuse(self, queue: AbstractQueue, message: AbstractIncomingMessage) -> None:
        """A delivery after stop(): its consumer came back (a reconnection restored it before
        the stop could forget it). Cancel that consumer first, then give the message back, so
        that it is not handed straight back to us again and again."""
        tag = message.consumer_tag
        if tag is not None:
            cancelling = self._refusing.get(tag)
            if cancelling is None:
                cancelling = asyncio.ensure_future(self._cancel(queue, tag))
                self._refusing[tag] = cancelling
            await asyncio.shield(cancelling)
        await _requeue(message, self._acks)

    async def receive(self) -> Delivery:
        if self._settlement is None and not self._stopped:
            raise RuntimeError("start() the consumer before receive()")
        while True:
            if self._stopped:
                raise ConsumerStoppedError("the RabbitMQ consumer was stopped")
            item = await self._buffer.get()
            if item is _STOP:
                self._buffer.put_nowait(_STOP)  # every later receive() stops too
                raise ConsumerStoppedError("the RabbitMQ consumer was stopped")
            delivery = self._deliver(item)
            if delivery is not None:
                return delivery

    async def receive_many(self, max_messages: int) -> list[Delivery]:
        deliveries = [await self.receive()]
        while len(deliveries) < max_messages and not self._buffer.empty():
            if self._stopped:
                break
            item = self._buffer.get_nowait()
            if item is _STOP:
                self._buffer.put_nowait(_STOP)
                break
            delivery = self._deliver(item)
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    def _deliver(self, item: tuple[AbstractIncomingMessage, str]) -> RabbitMQDelivery | None:
        message, queue = item
        if _channel_closed(message):
            # the connection dropped after it arrived: the broker delivers it again
            return None
        assert self._settlement is not None
        delivery = RabbitMQDelivery(message, queue, self._settlement, self._delimiter)
        self._unsettled[id(delivery)] = delivery
        return delivery

    def _forget(self, delivery: RabbitMQDelivery) -> None:
        self._unsettled.pop(id(delivery), None)

    async def check_connection(self, timeout: float) -> bool | None:
        """Whether every consumed queue's channel is open (false while aio-pika reconnects)."""
        if not self._started or self._stopped or not self._queues:
            return False
        return not any(queue.channel.is_closed for queue in self._queues)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            for queue, tag in self._consumers:
                await self._cancel(queue, tag)
            self._consumers.clear()
        finally:  # even when the stop itself is cut short: nothing stays stuck in the buffer
            await self._give_back_buffered()
            self._buffer.put_nowait(_STOP)

    async def _cancel(self, queue: AbstractQueue, tag: str) -> None:
        """Cancel a consumer, also while the connection is down: the broker dropped it then,
        but a robust queue would consume again once the connection is back, and hand every
        message to a consumer that only gives them back. Cancelling makes the robust queue
        forget it before anything else, so the reconnection does not restore it."""
        closed = queue.channel.is_closed
        try:
            await asyncio.wait_for(
                queue.cancel(tag), _CLOSED_CANCEL_TIMEOUT if closed else _CANCEL_TIMEOUT
            )
        except _CANCEL_ERRORS as error:
            if not closed:
                logger.debug("cancelling consumer %s on %s failed: %r", tag, queue.name, error)

    async def _give_back_buffered(self) -> None:
        """Requeue what was fetched but never handed out, so other members can take it."""
        while not self._buffer.empty():
            item = self._buffer.get_nowait()
            if item is not _STOP:
                await _requeue(item[0], self._acks)

    async def close(self) -> None:
        try:
            await self.stop()
            await self._give_back_buffered()  # what arrived after the stop
            for delivery in list(self._unsettled.values()):
                if not delivery.settled:
                    await delivery.nack()
            self._unsettled.clear()
            if self._acks is not None:
                await self._acks.drain()  # acked messages must not come back
            if self._connection is not None:
                connection, self._connection = self._connection, None
                self._publish_channel = None
                await connection.close()
        finally:
            self._started = False  # start() may connect again


def _channel_closed(message: AbstractIncomingMessage) -> bool:
    try:
        return bool(message.channel.is_closed)
    except CONNECTION_ERRORS:
        return True


async def _requeue(message: AbstractIncomingMessage, acks: AckBatcher | None) -> None:
    try:
        await message.nack(requeue=True)
    except CONNECTION_ERRORS as error:
        logger.debug("requeue failed (the broker redelivers anyway): %r", error)
    if acks is not None:
        acks.settled(message)
