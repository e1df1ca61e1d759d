"""A failure-test stream on the three-node RabbitMQ of scripts/brokers (rabbitmq-cluster): its
group queue a quorum queue whose leader is node 1, its dead-letter queue (a classic queue)
on node 3; and what the tests ask the cluster (a queue's leader, members online, messages)
with `rabbitmqctl` aimed at a node that runs."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from dispytch.backends.base import Consumer, Producer, Subscription
from tests.failures.clients import RABBITMQ_RECONNECT_INTERVAL
from tests.failures.rabbitmq_queue import RABBITMQCTL_TIMEOUT
from tests.failures.streams import RabbitMQStream

NODE_URLS = os.environ.get(
    "DISPYTCH_RABBITMQ_CLUSTER_URLS",
    ",".join(f"amqp://guest:guest@127.0.0.1:{5680 + n}/" for n in (1, 2, 3)),
).split(",")
NODES = (1, 2, 3)
QUORUM = {"x-queue-type": "quorum"}


def node_name(node: int) -> str:
    return f"rabbit-c{node}@localhost"


def urls(*order: int) -> str:
    """The cluster's URL list, nodes in this order."""
    return ",".join(NODE_URLS[node - 1] for node in order)


@dataclass(frozen=True)
class QueueState:
    leader: str
    online: int
    ready: int
    unacknowledged: int


class ClusterRabbitMQStream(RabbitMQStream):
    """Consumers connect to node 1 first (the queue's leader), producers to node 2 first."""

    url = NODE_URLS[1]

    async def prepare(self, partitions: int) -> None:
        import aio_pika

        from dispytch.rabbitmq.topology import Topology, declare_dead_letters

        # the classic dead-letter queue lives where it is declared: on node 3, not the victim
        connection = await aio_pika.connect(NODE_URLS[2], timeout=10)
        try:
            topology = Topology(self.exchange)
            channel = await connection.channel()
            await declare_dead_letters(
                channel, topology.dead_letter_exchange, topology.dead_letter_queue
            )
        finally:
            await connection.close()
        # a quorum queue's leader is the node its declaring client is connected to
        consumer = self.consumer()
        await consumer.start([Subscription.parse(self.topic, ":")])
        await consumer.close()

    def consumer(self, group: str | None = None) -> Consumer:
        from dispytch.rabbitmq import RabbitMQConsumer

        self.groups.add(group or self.group)
        return RabbitMQConsumer.create(
            urls(1, 2, 3),
            group or self.group,
            exchange=self.exchange,
            reconnect_interval=RABBITMQ_RECONNECT_INTERVAL,
            queue_arguments=QUORUM,
        )

    def producer(self) -> Producer:
        from dispytch.rabbitmq import RabbitMQProducer

        return RabbitMQProducer.create(
            urls(2, 3, 1), exchange=self.exchange, reconnect_interval=RABBITMQ_RECONNECT_INTERVAL
        )

    def worker_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DISPYTCH_RABBITMQ_URL": urls(1, 2, 3),
            "FAILURES_RABBITMQ_QUEUE_TYPE": "quorum",
        }

    async def queue_state(self, ask: int) -> QueueState:
        """The group queue as node `ask` sees it."""
        from dispytch.rabbitmq.topology import Topology

        name = Topology(self.exchange).queue(self.group)
        process = await asyncio.create_subprocess_exec(
            "rabbitmqctl", "-q", "-n", node_name(ask), "list_queues", "--no-table-headers",
            "name", "leader", "online", "messages_ready", "messages_unacknowledged",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"},
        )
        try:
            output, errors = await asyncio.wait_for(process.communicate(), RABBITMQCTL_TIMEOUT)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError("rabbitmqctl list_queues took too long") from None
        assert process.returncode == 0, f"rabbitmqctl: {errors.decode(errors='replace')}"
        for line in output.decode(errors="replace").splitlines():
            fields = line.split("\t")
            if fields[0] == name:
                return QueueState(
                    fields[1], fields[2].count("@"), int(fields[3]), int(fields[4])
                )
        raise AssertionError(f"node {ask} does not list the queue {name!r}")

    async def outstanding(self, group: str | None = None) -> int:
        assert group in (None, self.group)
        state = await self.queue_state(ask=2)
        return state.ready + state.unacknowledged


async def wait_queue(
    stream: ClusterRabbitMQStream, ask: int, condition: object, timeout: float, what: str
) -> QueueState:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while True:
        state = await stream.queue_state(ask)
        if condition(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {state}")
        await asyncio.sleep(0.5)
