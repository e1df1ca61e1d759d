"""What NATS settlement adds to the conformance suite: long handlers are not redelivered
(in_progress heartbeats), and headers NATS cannot carry as they are survive."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from dispytch.nats import NatsConsumer, NatsProducer
from dispytch.testing.harness import message

from .conftest import TEST_TOPOLOGY

pytestmark = pytest.mark.nats


async def test_a_message_held_longer_than_ack_wait_is_not_redelivered(nats_url: str) -> None:
    topic = f"dtest.long{uuid.uuid4().hex[:8]}"
    group = f"long-{uuid.uuid4().hex[:8]}"
    holder = NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, topics=[topic], ack_wait=1.0)
    other = NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, topics=[topic], ack_wait=1.0)
    producer = NatsProducer(nats_url)
    await holder.start([])
    await other.start([])
    try:
        await producer.send(message(topic, b"slow"))
        delivery = await asyncio.wait_for(holder.receive(), 10)
        # the other member of the group would get it if the server redelivered it
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(other.receive(), 3.5)
        await delivery.ack()
    finally:
        await producer.close()
        await holder.close()
        await other.close()


async def test_header_values_with_line_breaks_round_trip(nats_url: str) -> None:
    topic = f"dtest.lines{uuid.uuid4().hex[:8]}"
    consumer = NatsConsumer(nats_url, "lines", topology=TEST_TOPOLOGY, topics=[topic])
    producer = NatsProducer(nats_url)
    await consumer.start([])
    try:
        text = "first line\r\nsecond\x00 line"
        await producer.send(message(topic, b"x", b"\xff\x00key", note=text, plain="p"))
        delivery = await asyncio.wait_for(consumer.receive(), 10)
        assert delivery.headers["note"] == text
        assert delivery.headers["plain"] == "p"
        assert delivery.key == b"\xff\x00key"
        assert not any(name.startswith("dispytch-nats-") for name in delivery.headers)
        await delivery.ack()
    finally:
        await producer.close()
        await consumer.close()
