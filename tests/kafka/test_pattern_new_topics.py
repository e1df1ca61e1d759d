"""A pattern subscription finds a topic created after the worker started within seconds by
default (aiokafka's own metadata refresh is every 5 minutes), and the rebalance that the new
topic causes handles nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener
from dispytch.kafka import KafkaConsumer, KafkaProducer

from .kafka_helpers import group_name

PREFIX = f"orders{uuid.uuid4().hex[:10]}"


class Placed(EventBase):
    __topic__ = PREFIX + ".{customer_id}"
    __event_type__ = "placed"
    customer_id: str
    n: int


class Body(BaseModel):
    customer_id: str
    n: int


async def test_a_topic_created_after_start_is_read_within_seconds_and_nothing_twice(
    bootstrap: str,
) -> None:
    handled: Counter[int] = Counter()
    all_seen = asyncio.Event()
    # no topic_delimiter: a Kafka consumer's default is "." (switching backends changes only
    # the consumer and the producer)
    listener = EventListener(KafkaConsumer.create(bootstrap, group_name()))

    @listener.handler(topic=PREFIX + ".{customer_id}", event="placed")
    async def handle(event: Event[Body]) -> None:
        handled[event.body.n] += 1
        if len(handled) == 200:
            all_seen.set()

    producer = KafkaProducer.create(bootstrap)
    async with listener:
        # the listener is subscribed (by pattern) before the topic exists
        await EventEmitter(producer).emit_many(
            [Placed(customer_id="42", n=n) for n in range(200)]
        )
        await asyncio.wait_for(all_seen.wait(), 30)
        await asyncio.sleep(3)  # a late duplicate (from a rebalance) would come within this
    await producer.close()
    assert set(handled) == set(range(200))
    assert [n for n, times in handled.items() if times > 1] == []


def test_the_listener_takes_its_default_delimiter_from_the_consumer(bootstrap: str) -> None:
    from dispytch import InMemoryBroker

    assert EventListener(KafkaConsumer.create(bootstrap, "g")).topic_delimiter == "."
    assert EventListener(InMemoryBroker().consumer("g")).topic_delimiter == ":"
    given = EventListener(KafkaConsumer.create(bootstrap, "g"), topic_delimiter="-")
    assert given.topic_delimiter == "-"
