"""Emitting to the Kafka cluster when too few replicas are in sync: a clear, bounded error.

With acks="all" (KafkaProducer.create's default) the partition leader confirms a record only
once `min.insync.replicas` replicas hold it. When fewer are in sync, it refuses the record
(NOT_ENOUGH_REPLICAS); aiokafka's idempotent producer retries that until it succeeds, so emit
would wait as long as its timeout lets it: then it raises `NotEnoughReplicasError` (an
`EmitTimeoutError`) naming the cause, not a bare timeout and never a confirmation.
With two of the three nodes down the controller quorum is lost too: the leader can no longer
drop the dead replicas from the in-sync set, waits for them, and emit raises
`EmitTimeoutError` within its timeout.
"""

from __future__ import annotations

import time

import pytest

from dispytch import EventBase, EventEmitter
from dispytch.errors import EmitError, EmitTimeoutError, NotEnoughReplicasError
from tests.failures.events import ticks

from .kafka_cluster import ClusterKafkaStream, wait_partitions
from .nodes import ClusterControl

pytestmark = pytest.mark.cluster

EMIT_TIMEOUT = 8.0
#: the emit must raise within its timeout, give or take a loaded 2-core machine
SLACK = 10.0
WAIT = 60.0


async def test_too_few_in_sync_replicas_raise_not_enough_replicas(
    kafka_cluster: ClusterControl,
) -> None:
    # all three replicas must be in sync: one node down is one too few
    stream = ClusterKafkaStream(leader=1, topic_configs={"min.insync.replicas": "3"})
    await stream.prepare(1)
    try:
        async with stream.emitter(timeout=EMIT_TIMEOUT) as emitter:
            await emitter.emit(ticks(stream.topic, [0])[0])  # all in sync: confirmed
            await kafka_cluster.kill(3)
            await wait_partitions(
                stream.topic,
                lambda states: all(isr == {1, 2} for _, isr in states.values()),
                WAIT,
                "node 3 out of the in-sync replicas",
            )
            began = time.monotonic()
            raised = await _emit_error(emitter, ticks(stream.topic, [1])[0])
            took = time.monotonic() - began
            # node 3 back before anything is asserted: the producer's close waits until the
            # record aiokafka still retries is stored
            await kafka_cluster.start(3)
            await wait_partitions(
                stream.topic,
                lambda states: all(len(isr) == 3 for _, isr in states.values()),
                WAIT,
                "node 3 back in sync",
            )
            await emitter.emit(ticks(stream.topic, [2])[0])  # confirmed again
        assert isinstance(raised, NotEnoughReplicasError), repr(raised)
        assert "min.insync.replicas" in str(raised)
        assert took < EMIT_TIMEOUT + SLACK
    finally:
        await stream.cleanup()


async def test_two_nodes_down_emit_raises_within_its_timeout(
    kafka_cluster: ClusterControl,
) -> None:
    stream = ClusterKafkaStream(leader=1)
    await stream.prepare(1)
    try:
        async with stream.emitter(timeout=EMIT_TIMEOUT) as emitter:
            await emitter.emit(ticks(stream.topic, [0])[0])
            await kafka_cluster.kill(2)
            await kafka_cluster.kill(3)
            began = time.monotonic()
            raised = await _emit_error(emitter, ticks(stream.topic, [1])[0])
            took = time.monotonic() - began
            await kafka_cluster.restore()
            await emitter.emit(ticks(stream.topic, [2])[0])  # confirmed once they are back
        assert isinstance(raised, EmitTimeoutError), repr(raised)
        assert took < EMIT_TIMEOUT + SLACK
    finally:
        await kafka_cluster.restore()
        await stream.cleanup()


async def _emit_error(emitter: EventEmitter, event: EventBase) -> EmitError | None:
    """What `emit` raised (None: the broker confirmed the event)."""
    try:
        await emitter.emit(event)
    except EmitError as error:
        return error
    return None
