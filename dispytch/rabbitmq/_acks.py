"""Batched acks: the acks of a loop iteration sent as one `basic.ack(multiple=True)` per channel.

`basic.ack` with `multiple=True` and tag T acks every unsettled delivery of the channel up to
T, so it may only be sent when none of those is still being handled: for each channel, the
batcher keeps the tags delivered and not settled yet (`delivered` on arrival), and at the end
of the loop iteration in which deliveries were acked (`ack`) it sends one multiple ack for
those below the lowest tag still unsettled, and a plain ack for each one above it (handled
before a slower delivery ahead of it, they are not held back behind it).

The tags of a channel arrive in increasing order, and the consumer registers each one as it
arrives, before anything is awaited (aiormq hands deliveries to the consumer in a task each,
created in order), so no tag the broker sent can be missing from the unsettled set while a
higher one is acked. Deliveries settled another way (nack, dead letter, requeue) leave the set
only once that frame was written (`settled`), so a multiple ack sent later cannot cover them
first (acking a tag twice closes the channel).

Only for channels nobody else consumes on (those `RabbitMQConsumer.create` opens): the
batcher cannot know the tags of deliveries it does not see.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dispytch.rabbitmq._amqp import AbstractIncomingMessage, aiormq

logger = logging.getLogger("dispytch.rabbitmq")

#: the message's channel died (connection lost, consumer closed): the broker has already put
#: the message back and will deliver it again, so a late settlement is dropped, not raised
CHANNEL_GONE = (
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelClosed,
    ConnectionError,
)


class _ChannelAcks:
    __slots__ = ("pending", "unsettled")

    def __init__(self) -> None:
        #: tags delivered and not settled (acked or otherwise)
        self.unsettled: set[int] = set()
        #: deliveries acked by the listener whose ack is not sent yet, by tag
        self.pending: dict[int, AbstractIncomingMessage] = {}


class AckBatcher:
    def __init__(self) -> None:
        self._channels: dict[Any, _ChannelAcks] = {}
        self._flush_scheduled = False
        self._sending: set[asyncio.Future[None]] = set()
        #: the last send: each send waits for the one before, so that the frames go out in
        #: the order they were decided (a multiple ack must not overtake a plain ack it covers)
        self._last: asyncio.Future[None] | None = None

    def delivered(self, message: AbstractIncomingMessage) -> None:
        """A delivery arrived (called before anything is awaited for it)."""
        tag = message.delivery_tag
        channel = _channel_of(message)
        if tag is not None and channel is not None:
            acks = self._channels.get(channel)
            if acks is None:
                acks = self._channels[channel] = _ChannelAcks()
            acks.unsettled.add(tag)

    def ack(self, message: AbstractIncomingMessage) -> None:
        """Ack the delivery with the others of this loop iteration."""
        channel = _channel_of(message)
        if channel is None:
            logger.warning(
                "could not ack a message: its channel is gone, the broker will deliver it again"
            )
            return
        acks = self._channels.get(channel)
        tag = message.delivery_tag
        if acks is None or tag is None:  # not seen arriving: acked on its own
            self._send(None, [message])
            return
        acks.unsettled.discard(tag)
        acks.pending[tag] = message
        self._schedule()

    def settled(self, message: AbstractIncomingMessage) -> None:
        """The delivery was settled another way, and that frame was written (or its channel
        is gone)."""
        channel = _channel_of(message)
        acks = None if channel is None else self._channels.get(channel)
        if acks is not None and message.delivery_tag is not None:
            acks.unsettled.discard(message.delivery_tag)
            if acks.pending:
                self._schedule()

    async def drain(self) -> None:
        """Send what is pending now and wait until every ack was written (before closing)."""
        self.flush()
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        for channel, acks in list(self._channels.items()):
            if getattr(channel, "is_closed", False):
                # the broker put its deliveries back; a new channel counts its tags afresh
                del self._channels[channel]
                continue
            if not acks.pending:
                continue
            lowest_unsettled = min(acks.unsettled, default=None)
            below = [
                tag for tag in acks.pending if lowest_unsettled is None or tag < lowest_unsettled
            ]
            top = acks.pending[max(below)] if below else None
            for tag in below:
                del acks.pending[tag]
            singles = list(acks.pending.values())
            acks.pending.clear()
            self._send(top, singles)

    def _send(
        self, top: AbstractIncomingMessage | None, singles: list[AbstractIncomingMessage]
    ) -> None:
        sending = asyncio.ensure_future(_send_acks(self._last, top, singles))
        self._last = sending
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)


def _channel_of(message: AbstractIncomingMessage) -> Any:
    """The message's channel; None once it is closed (aio-pika raises then)."""
    try:
        return message.channel
    except CHANNEL_GONE:
        return None


async def _send_acks(
    previous: asyncio.Future[None] | None,
    top: AbstractIncomingMessage | None,
    singles: list[AbstractIncomingMessage],
) -> None:
    """After the `previous` send: one multiple ack up to `top`, then a plain ack for each of
    `singles`."""
    if previous is not None and not previous.done():
        await asyncio.wait({previous})
    try:
        if top is not None:
            await top.ack(multiple=True)
        for message in singles:
            await message.ack()
    except CHANNEL_GONE as error:
        logger.warning(
            "could not ack messages (%s): their channel is gone, the broker will deliver them "
            "again",
            error,
        )
