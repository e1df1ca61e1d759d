"""Topic patterns and delimiters on NATS, against the real server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.backends import Subscription
from dispytch.errors import BackendError
from dispytch.nats import JetStreamTopology, NatsConsumer, NatsProducer
from dispytch.nats.topology import subject_of, topic_of

from .conftest import TEST_TOPOLOGY

pytestmark = pytest.mark.nats


async def test_wildcard_pattern_with_another_delimiter(nats_url: str) -> None:
    """`orders:{region}` with ':' becomes the subject `...orders.*`; the handler gets the
    concrete topic in the listener's delimiter and the placeholder's value."""
    base = f"dtest:wild{uuid.uuid4().hex[:8]}"

    class Placed(EventBase):
        __topic__ = base + ":{region}"
        __event_type__ = "placed"
        region: str
        n: int

    seen: list[tuple[str, str, int]] = []
    done = asyncio.Event()
    consumer = NatsConsumer(nats_url, "wild", topology=TEST_TOPOLOGY)
    listener = EventListener(consumer, topic_delimiter=":")

    @listener.handler(topic=base + ":{region}", event="placed")
    async def on_placed(event: Event[Placed], region: str) -> None:
        seen.append((event.topic, region, event.body.n))
        if len(seen) == 2:
            done.set()

    producer = NatsProducer(nats_url, topic_delimiter=":")
    emitter = EventEmitter(producer)
    async with listener:
        await emitter.emit(Placed(region="eu", n=1))
        await emitter.emit(Placed(region="us", n=2))
        await asyncio.wait_for(done.wait(), 15)
    await producer.close()
    assert sorted(seen) == [(base + ":eu", "eu", 1), (base + ":us", "us", 2)]


async def test_a_stream_with_other_subjects_is_refused(nats_url: str) -> None:
    odd = JetStreamTopology(stream=TEST_TOPOLOGY.stream, subjects=("elsewhere.>",))
    consumer = NatsConsumer(nats_url, "refused", topology=odd, topics=["dtest.x"])
    with pytest.raises(BackendError, match="exists with subjects"):
        await consumer.start([])
    await consumer.close()


async def test_a_consumer_with_other_settings_is_refused(nats_url: str) -> None:
    group = f"settings-{uuid.uuid4().hex[:8]}"
    first = NatsConsumer(nats_url, group, topology=TEST_TOPOLOGY, topics=["dtest.s"])
    await first.start([])
    await first.close()
    second = NatsConsumer(
        nats_url, group, topology=TEST_TOPOLOGY, topics=["dtest.s"], ack_wait=99.0
    )
    with pytest.raises(BackendError, match="ack_wait"):
        await second.start([])
    await second.close()


@pytest.mark.parametrize(
    ("pattern", "delimiter", "subject", "topic"),
    [
        ("bench.users", ":", "bench.users", "bench.users"),
        ("orders:{region}", ":", "orders.eu", "orders:eu"),
        ("shop.orders:{region}:*", ":", "shop.orders.eu.created", "shop.orders:eu:created"),
        ("orders.{region}", ".", "orders.eu", "orders.eu"),
        ("orders:{region}", ":", "orders.eu.x", None),
        ("shop.orders:{region}", ":", "shop.other.eu", None),
    ],
)
def test_subjects_map_back_to_the_listeners_topics(
    pattern: str, delimiter: str, subject: str, topic: str | None
) -> None:
    subscription = Subscription.parse(pattern, delimiter)
    assert topic_of(subject, subscription) == topic
    if topic is not None:
        assert subject_of(topic, delimiter) == subject


async def test_a_dotted_topic_with_the_default_delimiter(nats_url: str) -> None:
    """The listener's default delimiter is ':'; a topic with dots is still one literal topic."""
    topic = f"dtest.dotted{uuid.uuid4().hex[:8]}.created"

    class Created(EventBase):
        __topic__ = topic
        __event_type__ = "created"

    seen: list[str] = []
    done = asyncio.Event()
    listener = EventListener(NatsConsumer(nats_url, "dotted", topology=TEST_TOPOLOGY))

    @listener.handler(topic=topic, event="created")
    async def on_created(event: Event[Created]) -> None:
        seen.append(event.topic)
        done.set()

    producer = NatsProducer(nats_url)
    async with listener:
        await EventEmitter(producer).emit(Created())
        await asyncio.wait_for(done.wait(), 15)
    await producer.close()
    assert seen == [topic]
