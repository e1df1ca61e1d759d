"""Batched acks (dispytch/rabbitmq/_acks.py): one basic.ack(multiple=True) for a run of acked
deliveries, never covering one that is still unsettled or was settled another way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dispytch.backends.base import OutgoingMessage
from dispytch.rabbitmq._acks import AckBatcher

from .conftest import Names
from .test_rabbitmq_backend import producer_for, receive, started_consumer

pytestmark = pytest.mark.rabbitmq


class Channel:
    is_closed = False

    def __init__(self) -> None:
        self.frames: list[tuple[int, bool]] = []


class Message:
    """What the batcher uses of an aio-pika message: its channel, its tag, `ack()`."""

    def __init__(self, channel: Channel, tag: int) -> None:
        self.channel = channel
        self.delivery_tag = tag

    async def ack(self, multiple: bool = False) -> None:
        await asyncio.sleep(0)  # a write that yields, as aiormq's drain can
        self.channel.frames.append((self.delivery_tag, multiple))


async def settle_round(batcher: AckBatcher) -> None:
    await asyncio.sleep(0)  # the flush scheduled for the end of this loop iteration
    await batcher.drain()


async def test_a_run_of_acks_is_one_multiple_ack_and_never_passes_an_unsettled_tag() -> None:
    channel = Channel()
    batcher = AckBatcher()
    messages = [Message(channel, tag) for tag in range(1, 8)]
    for message in messages:
        batcher.delivered(message)  # type: ignore[arg-type]
    # 2 and 3 are done while 1 still runs: acked one by one, not held back behind it
    batcher.ack(messages[1])  # type: ignore[arg-type]
    batcher.ack(messages[2])  # type: ignore[arg-type]
    await settle_round(batcher)
    assert channel.frames == [(2, False), (3, False)]
    # 1 done, 4 dead-lettered (settled another way), 5 and 6 done: one multiple ack up to 6
    # would cover 4 twice, so the run stops below it
    batcher.ack(messages[0])  # type: ignore[arg-type]
    batcher.ack(messages[4])  # type: ignore[arg-type]
    batcher.ack(messages[5])  # type: ignore[arg-type]
    await settle_round(batcher)
    assert channel.frames[2:] == [(1, True), (5, False), (6, False)]
    batcher.settled(messages[3])  # type: ignore[arg-type]
    batcher.ack(messages[6])  # type: ignore[arg-type]
    await settle_round(batcher)
    assert channel.frames[5:] == [(7, True)]


async def test_acks_go_out_in_the_order_they_were_decided() -> None:
    """A multiple ack decided after a plain one must not be written before it (it would ack
    that tag first, and the plain ack of a tag already acked closes the channel)."""
    channel = Channel()
    batcher = AckBatcher()
    messages = [Message(channel, tag) for tag in range(1, 5)]
    for message in messages:
        batcher.delivered(message)  # type: ignore[arg-type]
    batcher.ack(messages[1])  # type: ignore[arg-type]
    batcher.ack(messages[2])  # type: ignore[arg-type]
    batcher.flush()  # plain acks of 2 and 3, each write yielding
    batcher.ack(messages[0])  # type: ignore[arg-type]
    batcher.ack(messages[3])  # type: ignore[arg-type]
    batcher.flush()  # a multiple ack up to 4
    await batcher.drain()
    assert channel.frames == [(2, False), (3, False), (4, True)]


async def test_batched_acks_with_a_dead_letter_between_settle_everything_once(
    rabbitmq_url: str, names: Names
) -> None:
    """Against the broker: acks batched around a message that is dead-lettered (acked on its
    own after its copy is stored) leave nothing to deliver again, and close no channel."""
    from dispytch.reasons import DeadLetterReason, dead_letter_headers

    producer = producer_for(rabbitmq_url, names)
    consumer = await started_consumer(rabbitmq_url, names, "g", "t", prefetch=50)
    try:
        for n in range(30):
            await producer.send(OutgoingMessage("t", str(n).encode()), timeout=5)
        deliveries = [await receive(consumer) for _ in range(30)]
        reason = DeadLetterReason(
            stage="handler", error_type="E", error_message="m", original_topic="t"
        )
        done: list[Any] = []
        for delivery in deliveries:
            if delivery.value == b"10":
                done.append(delivery.dead_letter(dead_letter_headers(delivery.headers, reason)))
            else:
                assert delivery.ack_now()
        await asyncio.gather(*done)
        await producer.send(OutgoingMessage("t", b"after"), timeout=5)
        after = await receive(consumer)  # the channel is still open
        assert after.value == b"after"
        assert after.ack_now()
    finally:
        await consumer.close()
        await producer.close()
    again = await started_consumer(rabbitmq_url, names, "g", "t")
    try:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(again.receive(), 1.0)
    finally:
        await again.close()


class GoneMessage(Message):
    """A message whose channel closed: aio-pika raises when it is asked for the channel."""

    @property
    def channel(self) -> Channel:
        from dispytch.rabbitmq._amqp import aiormq

        raise aiormq.exceptions.ChannelInvalidStateError()

    @channel.setter
    def channel(self, value: Channel) -> None:
        pass


async def test_an_ack_after_the_channel_closed_is_dropped_not_raised() -> None:
    batcher = AckBatcher()
    gone = GoneMessage(Channel(), 1)
    batcher.delivered(gone)  # type: ignore[arg-type]
    batcher.ack(gone)  # type: ignore[arg-type]
    batcher.settled(gone)  # type: ignore[arg-type]
    await settle_round(batcher)
