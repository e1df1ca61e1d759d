"""The continuous pull (`dispytch.nats._pull`): what arrives is what was asked for, statuses
are told apart from messages, and a stop leaves nothing in flight."""

from __future__ import annotations

import asyncio
import logging
import uuid

import nats
import pytest

from dispytch.backends.base import Delivery, ListenerNeeds
from dispytch.nats import NatsConsumer, NatsProducer
from dispytch.nats.delivery import _ack_subject_fields
from dispytch.testing.harness import message

from .conftest import TEST_TOPOLOGY

pytestmark = pytest.mark.nats


async def _ack_pending(nats_url: str, group: str, subject: str) -> int:
    client = await nats.connect(nats_url)
    try:
        durable = TEST_TOPOLOGY.durable_name(group, subject)
        info = await client.jetstream().consumer_info(TEST_TOPOLOGY.stream, durable)
        return int(info.num_ack_pending or 0)
    finally:
        await client.close()


async def test_a_message_with_a_status_header_is_delivered(nats_url: str) -> None:
    # nats-py's fetch() took an application header named Status for a server status and
    # dropped the message (redelivered after ack_wait, dropped again, forever)
    topic = f"dtest.status{uuid.uuid4().hex[:8]}"
    consumer = NatsConsumer(nats_url, "status", topology=TEST_TOPOLOGY, topics=[topic])
    producer = NatsProducer(nats_url)
    await consumer.start([])
    try:
        await producer.send(message(topic, b"x", Status="408", Description="Request Timeout"))
        delivery = await asyncio.wait_for(consumer.receive(), 10)
        assert delivery.headers["Status"] == "408"
        await delivery.ack()
    finally:
        await producer.close()
        await consumer.close()


async def test_the_consumer_takes_no_more_than_the_listener_has_room_for(nats_url: str) -> None:
    topic = f"dtest.room{uuid.uuid4().hex[:8]}"
    group = f"room-{uuid.uuid4().hex[:8]}"
    consumer = NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, topics=[topic])
    consumer.prepare(ListenerNeeds(max_in_flight=5, delayed_retries=False))
    producer = NatsProducer(nats_url)
    await consumer.start([])
    try:
        await producer.send_many([message(topic, str(n).encode()) for n in range(20)])
        held: list[Delivery] = []
        while len(held) < 5:
            held += await asyncio.wait_for(consumer.receive_many(10), 10)
        assert len(held) == 5
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consumer.receive(), 2.5)  # more than a request's expiry
        assert await _ack_pending(nats_url, group, topic) == 5
        for delivery in held:
            await delivery.ack()
        rest: list[Delivery] = []
        while len(rest) < 15:
            batch = await asyncio.wait_for(consumer.receive_many(10), 10)
            rest += batch
            for delivery in batch:
                await delivery.ack()
        assert sorted(int(d.value) for d in held + rest) == list(range(20))
    finally:
        await producer.close()
        await consumer.close()


async def test_close_leaves_no_message_delivered_to_nobody(nats_url: str) -> None:
    topic = f"dtest.close{uuid.uuid4().hex[:8]}"
    group = f"close-{uuid.uuid4().hex[:8]}"
    consumer = NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, topics=[topic])
    consumer.prepare(ListenerNeeds(max_in_flight=10, delayed_retries=False))
    producer = NatsProducer(nats_url)
    await consumer.start([])
    try:
        await producer.send_many([message(topic, str(n).encode()) for n in range(200)])
        held: list[Delivery] = []
        while len(held) < 10:
            held += await asyncio.wait_for(consumer.receive_many(10), 10)
        for delivery in held:
            await delivery.ack()  # frees room: the consumer asks for more right away
        await consumer.close()
        # whatever was asked for before the close was given back, not left to ack_wait
        assert await _ack_pending(nats_url, group, topic) == 0
    finally:
        await producer.close()
        await consumer.close()


@pytest.mark.parametrize(
    ("reply", "fields"),
    [
        ("$JS.ACK.ORDERS.billing_1a.3.41.40.1700000000000000000.7", ("ORDERS", 41, 3)),
        ("$JS.ACK._.acchash.ORDERS.billing.2.41.40.1700000000000000000.7.x1", ("ORDERS", 41, 2)),
        ("$JS.ACK.hub.acchash.ORDERS.billing.1.9.9.1700000000000000000.0", ("ORDERS", 9, 1)),
        ("$JS.ACK.ORDERS.billing.x.41.40.1700000000000000000.7", None),
        ("$JS.NAK.ORDERS.billing.3.41.40.1700000000000000000.7", None),
        ("_INBOX.abc", None),
        ("", None),
        (None, None),
    ],
)
def test_the_ack_subject_gives_stream_sequence_and_deliveries(
    reply: str | None, fields: tuple[str, int, int] | None
) -> None:
    assert _ack_subject_fields(reply) == fields


async def test_a_deleted_consumer_is_reported(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"dtest.gone{uuid.uuid4().hex[:8]}"
    group = f"gone-{uuid.uuid4().hex[:8]}"
    consumer = NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, topics=[topic])
    await consumer.start([])
    client = await nats.connect(nats_url)
    try:
        with caplog.at_level(logging.WARNING, logger="dispytch.nats"):
            durable = TEST_TOPOLOGY.durable_name(group, topic)
            await client.jetstream().delete_consumer(TEST_TOPOLOGY.stream, durable)
            for _ in range(100):
                if any("ended a pull request" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.05)
        ended = [r.getMessage() for r in caplog.records if "ended a pull request" in r.getMessage()]
        assert ended
        assert "409" in ended[0]
    finally:
        await client.close()
        await consumer.close()


async def test_a_message_given_back_while_stopping_is_delivered_once_more_at_most(
    nats_url: str,
) -> None:
    # the requests still open while stop() waits for them got the given-back message at
    # once; giving it back again at once sent it to them again, a hundred deliveries in a row
    topic = f"dtest.back{uuid.uuid4().hex[:8]}"
    group = f"back-{uuid.uuid4().hex[:8]}"
    consumer = NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, topics=[topic])
    producer = NatsProducer(nats_url)
    await consumer.start([])
    try:
        await producer.send(message(topic, b"x"))
        delivery = await asyncio.wait_for(consumer.receive(), 10)
        stopping = asyncio.create_task(consumer.stop())
        await asyncio.sleep(0)  # stop() runs: the open requests stay open until they expire
        await delivery.nack()
        await stopping
        await consumer.close()
        again = NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, topics=[topic])
        await again.start([])
        try:
            redelivered = await asyncio.wait_for(again.receive(), 10)
            assert redelivered.delivery_count in (2, 3)
            await redelivered.ack()
        finally:
            await again.close()
    finally:
        await producer.close()
        await consumer.close()


async def test_a_small_listener_gets_the_next_messages_as_soon_as_it_has_room(
    nats_url: str,
) -> None:
    # with room for 4, the consumer asked again only once a quarter of its batch of 100 was
    # free, which never happened: it waited for each request to expire, 4 messages a second
    topic = f"dtest.small{uuid.uuid4().hex[:8]}"
    consumer = NatsConsumer(nats_url, "small", topology=TEST_TOPOLOGY, topics=[topic])
    consumer.prepare(ListenerNeeds(max_in_flight=4, delayed_retries=False))
    producer = NatsProducer(nats_url)
    await consumer.start([])
    try:
        await producer.send_many([message(topic, str(n).encode()) for n in range(100)])
        handled: list[int] = []

        async def handle_all() -> None:
            while len(handled) < 100:
                for delivery in await consumer.receive_many(4):
                    handled.append(int(delivery.value))
                    await delivery.ack()

        await asyncio.wait_for(handle_all(), 15)  # about 25 s at 4 messages a second
        assert sorted(handled) == list(range(100))
    finally:
        await producer.close()
        await consumer.close()
