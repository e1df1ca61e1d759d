"""Offsets are committed only below the first unsettled record, so nothing is lost."""

from __future__ import annotations

import asyncio

import pytest

from dispytch.backends.base import ListenerNeeds, Subscription
from dispytch.kafka import KafkaConsumer

from .conftest import NewTopicFactory
from .kafka_helpers import group_name, produce, receive_n, receive_none

pytestmark = pytest.mark.kafka


def values(deliveries: list) -> list[bytes]:  # type: ignore[type-arg]
    return sorted(d.value for d in deliveries)


async def test_only_unsettled_records_come_back_after_a_restart(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"%02d" % i for i in range(10)])
    group = group_name()

    consumer = KafkaConsumer.create(bootstrap, group, topics=[topic], commit_interval=0.05)
    await consumer.start([])
    first = await receive_n(consumer, 10)
    # settle out of order: 0-2 and 5-9, leave 3 and 4 running
    for delivery in first[:3] + first[5:]:
        await delivery.ack()
    await consumer.close()
    await first[3].ack()  # after close: does nothing

    again = KafkaConsumer.create(bootstrap, group, topics=[topic])
    await again.start([])
    try:
        redelivered = await receive_n(again, 7)
        # the commit stopped at 3: 3..9 come back (5-9 once more, at-least-once), 0-2 never
        assert values(redelivered) == [b"%02d" % i for i in range(3, 10)]
        assert await receive_none(again, 1.0) == []
    finally:
        await again.close()


async def test_a_restart_continues_from_the_committed_offset(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=3)
    sent = [b"%03d" % i for i in range(120)]
    await produce(bootstrap, topic, sent[:60])
    group = group_name()
    seen: list[bytes] = []

    consumer = KafkaConsumer.create(bootstrap, group, commit_interval=0.05)
    await consumer.start([Subscription.parse(topic, ".")])
    for delivery in await receive_n(consumer, 40):
        seen.append(delivery.value)
        await delivery.ack()
    await consumer.close()

    await produce(bootstrap, topic, sent[60:])
    again = KafkaConsumer.create(bootstrap, group)
    await again.start([Subscription.parse(topic, ".")])
    try:
        for delivery in await receive_n(again, 80):
            seen.append(delivery.value)
            await delivery.ack()
        assert await receive_none(again, 1.0) == []
    finally:
        await again.close()
    assert sorted(seen) == sent  # nothing lost, nothing twice


async def test_commits_are_batched_and_made_while_running(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    await produce(bootstrap, topic, [b"%d" % i for i in range(50)])
    group = group_name()
    consumer = KafkaConsumer.create(bootstrap, group, topics=[topic], commit_interval=0.1)
    await consumer.start([])
    try:
        for delivery in await receive_n(consumer, 50):
            await delivery.ack()
        client = consumer.client
        assert client is not None
        (partition,) = [tp for tp in client.assignment() if tp.topic == topic]

        async def committed() -> int | None:
            return await client.committed(partition)  # type: ignore[no-any-return]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while await committed() != 50:
            assert loop.time() < deadline, "offsets were not committed while running"
            await asyncio.sleep(0.05)
    finally:
        await consumer.close()


async def test_two_consumers_in_a_group_share_partitions_and_see_everything(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=4)
    group = group_name()
    first = KafkaConsumer.create(bootstrap, group, topics=[topic], commit_interval=0.05)
    second = KafkaConsumer.create(bootstrap, group, topics=[topic], commit_interval=0.05)
    await first.start([])
    await second.start([])
    seen: dict[str, list[bytes]] = {"first": [], "second": []}

    async def drain(name: str, consumer: KafkaConsumer) -> None:
        while True:
            delivery = await consumer.receive()
            seen[name].append(delivery.value)
            await delivery.ack()

    tasks = [
        asyncio.create_task(drain("first", first)),
        asyncio.create_task(drain("second", second)),
    ]
    try:
        sent = [b"%03d" % i for i in range(200)]
        for i in range(4):
            await produce(bootstrap, topic, sent[i * 50 : (i + 1) * 50], partition=i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(set(seen["first"]) | set(seen["second"])) < 200:
            assert loop.time() < deadline, "not every record arrived"
            await asyncio.sleep(0.05)
        assert sorted(set(seen["first"]) | set(seen["second"])) == sent
        assert seen["first"], "both members should get partitions"
        assert seen["second"], "both members should get partitions"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await first.close()
        await second.close()


async def test_a_rebalance_commits_what_is_settled_and_hands_the_rest_over(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=2)
    await produce(bootstrap, topic, [b"a%d" % i for i in range(5)], partition=0)
    await produce(bootstrap, topic, [b"b%d" % i for i in range(5)], partition=1)
    group = group_name()
    # a long commit interval: only the rebalance commits
    first = KafkaConsumer.create(
        bootstrap, group, topics=[topic], commit_interval=60, revoke_timeout=0.5
    )
    await first.start([])
    deliveries = await receive_n(first, 10)
    held = [d for d in deliveries if d.value in (b"a3", b"b4")]
    for delivery in deliveries:
        if delivery not in held:
            await delivery.ack()

    # a second member joins: the first one's partitions are revoked (and reassigned)
    second = KafkaConsumer.create(bootstrap, group, topics=[topic])
    joining = asyncio.create_task(second.start([]))
    seen: list[bytes] = []

    async def drain(consumer: KafkaConsumer) -> None:
        while True:
            delivery = await consumer.receive()
            seen.append(delivery.value)
            await delivery.ack()

    drains = [asyncio.create_task(drain(first))]
    try:
        await asyncio.wait_for(joining, 30)
        drains.append(asyncio.create_task(drain(second)))
        for delivery in held:
            await delivery.ack()  # too late: the partitions moved on
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while sorted(set(seen)) != [b"a3", b"a4", b"b4"]:
            assert loop.time() < deadline, f"expected a3, a4 and b4 again, saw {seen}"
            await asyncio.sleep(0.05)
        assert not {b"a0", b"a1", b"a2", b"b0", b"b3"} & set(seen)
    finally:
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        await first.close()
        await second.close()


async def _rebalanced_while_draining(
    bootstrap: str, topic: str, settle: bool
) -> tuple[KafkaConsumer, KafkaConsumer, list[bytes], float]:
    """Two partitions of five records; a first member takes all ten, stops fetching (its
    listener would now drain, with 30 s of grace) and holds them; a second member joins. With
    `settle`, the first acks its records 1.5 s later, past its revoke_timeout of 0.5 s; else
    it closes then. Returns both members, what the second received, and how long its join
    took."""
    await produce(bootstrap, topic, [b"a%d" % i for i in range(5)], partition=0)
    await produce(bootstrap, topic, [b"b%d" % i for i in range(5)], partition=1)
    group = group_name()
    # heartbeats every 0.1 s: the first member learns of the rebalance at once, so that its
    # revoke_timeout is over well before the 1.5 s below
    first = KafkaConsumer.create(
        bootstrap,
        group,
        topics=[topic],
        commit_interval=60,
        revoke_timeout=0.5,
        heartbeat_interval_ms=100,
    )
    first.prepare(ListenerNeeds(max_in_flight=10, delayed_retries=False, shutdown_grace=30))
    await first.start([])
    held = await receive_n(first, 10)
    await first.stop()  # the listener's shutdown: fetching ends, the drain begins
    second = KafkaConsumer.create(bootstrap, group, topics=[topic])
    loop = asyncio.get_running_loop()
    began = loop.time()
    joining = asyncio.create_task(second.start([]))
    await asyncio.sleep(1.5)
    if settle:
        for delivery in held:
            await delivery.ack()  # the drain finishes these, after the revoke_timeout
    else:
        await first.close()  # the drain is over (its grace ran out): the rebalance goes on
    await asyncio.wait_for(joining, 30)
    joined_after = loop.time() - began
    if settle:
        await first.close()
    return first, second, [d.value for d in await receive_none(second, 2.0)], joined_after


async def test_a_member_rebalanced_while_draining_commits_what_the_drain_finishes(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    """Two members stopping together: the first to leave makes the other give up its
    partitions in the middle of its drain. What the drain finishes after the revoke_timeout
    is committed, not handled again by the next owner (it was, before)."""
    topic = await new_topic(partitions=2)
    first, second, again, _ = await _rebalanced_while_draining(bootstrap, topic, settle=True)
    try:
        assert again == [], "records the drain finished were handled again"
    finally:
        await first.close()
        await second.close()


async def test_a_rebalance_waits_for_a_drain_no_longer_than_until_close(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    """A drain whose records never settle holds the rebalance until the consumer closes,
    not for the listener's whole grace; its records go to the next owner."""
    topic = await new_topic(partitions=2)
    first, second, again, joined_after = await _rebalanced_while_draining(
        bootstrap, topic, settle=False
    )
    try:
        assert joined_after < 15, f"the join took {joined_after:.1f}s: the grace, not close()"
        everything = {b"%s%d" % (p, i) for p in (b"a", b"b") for i in range(5)}
        received = set(again)

        async def all_received() -> None:
            while received != everything:  # the first's leaving rebalances again: repeats
                delivery = await second.receive()
                received.add(delivery.value)
                await delivery.ack()

        await asyncio.wait_for(all_received(), 30)
    finally:
        await first.close()
        await second.close()


async def test_a_cancelled_receive_loses_nothing(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic(partitions=2)
    sent = [b"%02d" % i for i in range(60)]
    consumer = KafkaConsumer.create(bootstrap, group_name(), topics=[topic])
    await consumer.start([])
    seen: list[bytes] = []
    try:
        await produce(bootstrap, topic, sent)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(seen) < len(sent):
            assert loop.time() < deadline, f"only {len(seen)} of {len(sent)} arrived"
            try:  # very short waits: many receive() calls are cancelled mid-fetch
                delivery = await asyncio.wait_for(consumer.receive(), 0.002)
            except asyncio.TimeoutError:
                continue
            seen.append(delivery.value)
            await delivery.ack()
        assert sorted(seen) == sent
    finally:
        await consumer.close()
