"""A failure-test stream on the three-node Kafka of scripts/brokers (kafka-cluster), with its
partitions' leaders placed on a chosen node, and what the tests ask the cluster: leaders,
in-sync replicas, a group's coordinator."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from dispytch.backends.base import Consumer, Producer
from tests.failures.clients import KAFKA_CONSUMER_OPTIONS
from tests.failures.streams import KafkaStream

BOOTSTRAP = os.environ.get(
    "DISPYTCH_KAFKA_CLUSTER_BOOTSTRAP_SERVERS", "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
)
NODES = (1, 2, 3)
#: leader and in-sync replicas of each partition of a topic
PartitionStates = dict[int, tuple[int, frozenset[int]]]


class ClusterKafkaStream(KafkaStream):
    """A stream whose topic has three replicas; every partition's preferred leader is `leader`
    (so killing that node kills the leader of every consumed partition)."""

    bootstrap = BOOTSTRAP

    def __init__(self, leader: int, topic_configs: dict[str, str] | None = None) -> None:
        super().__init__()
        self.leader = leader
        self.topic_configs = topic_configs or {}

    async def prepare(self, partitions: int) -> None:
        from aiokafka.admin import NewTopic

        self.partitions = partitions
        replicas = [self.leader, *(node for node in NODES if node != self.leader)]
        async with admin_client() as admin:
            await admin.create_topics(
                [
                    NewTopic(
                        self.topic,
                        num_partitions=-1,
                        replication_factor=-1,
                        replica_assignments={p: replicas for p in range(partitions)},
                        topic_configs=self.topic_configs,
                    ),
                    NewTopic(self.dead_letter_topic, num_partitions=1, replication_factor=3),
                ]
            )
        await wait_partitions(
            self.topic,
            lambda states: len(states) == partitions
            and all(leader == self.leader and len(isr) == 3 for leader, isr in states.values()),
            30.0,
            f"topic {self.topic}: every partition led by node {self.leader}, 3 in sync",
        )

    def consumer(self, group: str | None = None) -> Consumer:
        from dispytch.kafka import KafkaConsumer

        return KafkaConsumer.create(BOOTSTRAP, group or self.group, **KAFKA_CONSUMER_OPTIONS)

    def producer(self) -> Producer:
        from dispytch.kafka import KafkaProducer

        return KafkaProducer.create(BOOTSTRAP)

    def worker_env(self) -> dict[str, str]:
        """The environment of a worker (tests.failures.worker) that consumes from the cluster."""
        return {**os.environ, "DISPYTCH_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP}


@contextlib.asynccontextmanager
async def admin_client() -> AsyncIterator[Any]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partition_states(topic: str) -> PartitionStates:
    """Each partition's leader and in-sync replicas, as the cluster's metadata says now."""
    async with admin_client() as admin:
        described = await admin.describe_topics([topic])
    states: PartitionStates = {}
    for entry in described:
        for partition in entry["partitions"]:
            states[partition["partition"]] = (partition["leader"], frozenset(partition["isr"]))
    return states


async def wait_partitions(topic: str, condition: Any, timeout: float, what: str) -> PartitionStates:
    """Poll the topic's partition states until `condition(states)` holds (bounded)."""
    deadline = time.monotonic() + timeout
    states: PartitionStates = {}
    while True:
        try:
            states = await partition_states(topic)
        except Exception as error:  # a node just killed: the next look asks another
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: metadata failed: {error!r}") from error
        else:
            if condition(states):
                return states
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {states}")
        await asyncio.sleep(0.2)


async def coordinator_of(group: str, timeout: float = 30.0) -> int:
    """The node that coordinates `group` (it exists before the group does: the leader of the
    group's partition of __consumer_offsets, which the first call creates)."""
    deadline = time.monotonic() + timeout
    async with admin_client() as admin:
        while True:
            try:
                node: int = await admin.find_coordinator(group)
                return node
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
