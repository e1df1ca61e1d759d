"""Where the brokers are and how the failure tests connect to them (tests and worker alike)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dispytch.backends.base import Consumer, Producer

if TYPE_CHECKING:
    from dispytch.nats import JetStreamTopology

KAFKA_BOOTSTRAP = os.environ.get("DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
RABBITMQ_URL = os.environ.get("DISPYTCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("DISPYTCH_REDIS_URL", "redis://127.0.0.1:6379/0")
#: a killed Redis member's entries are taken over once idle this long (handlers are quick)
REDIS_CONSUMER_OPTIONS: dict[str, Any] = {"claim_idle": 2.0, "claim_interval": 0.5}

NATS_URL = os.environ.get("DISPYTCH_NATS_URL", "nats://127.0.0.1:4222")
#: a SIGKILLed NATS worker's messages come back after ack_wait: keep it short
NATS_ACK_WAIT = 5.0

#: a killed Kafka member blocks its group's next rebalance until its session expires: keep
#: that short (6 s is the broker's default minimum), so that a restarted worker resumes soon
KAFKA_CONSUMER_OPTIONS: dict[str, Any] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
}
#: how soon a robust AMQP connection tries again after losing the broker
RABBITMQ_RECONNECT_INTERVAL = 0.5
#: the type of the group queues RabbitMQ consumers declare ("quorum" on a cluster)
RABBITMQ_QUEUE_TYPE = os.environ.get("FAILURES_RABBITMQ_QUEUE_TYPE")


def consumer(backend: str, group: str, exchange: str | None = None) -> Consumer:
    """A consumer for `group` on a real broker ("kafka" or "rabbitmq"), not started."""
    if backend == "kafka":
        from dispytch.kafka import KafkaConsumer

        return KafkaConsumer.create(KAFKA_BOOTSTRAP, group, **KAFKA_CONSUMER_OPTIONS)
    if backend == "rabbitmq":
        from dispytch.rabbitmq import RabbitMQConsumer

        assert exchange is not None, "RabbitMQ streams name their own exchange"
        return RabbitMQConsumer.create(
            RABBITMQ_URL,
            group,
            exchange=exchange,
            reconnect_interval=RABBITMQ_RECONNECT_INTERVAL,
            queue_arguments={"x-queue-type": RABBITMQ_QUEUE_TYPE} if RABBITMQ_QUEUE_TYPE else None,
        )
    if backend == "redis":
        from dispytch.redis import RedisStreamConsumer

        return RedisStreamConsumer.create(REDIS_URL, group, **REDIS_CONSUMER_OPTIONS)
    if backend == "nats":
        from dispytch.nats import NatsConsumer

        assert exchange is not None, "NATS streams name their own JetStream stream"
        return NatsConsumer(
            NATS_URL, group, topology=nats_topology(exchange), ack_wait=NATS_ACK_WAIT
        )
    raise ValueError(f"no such broker backend: {backend!r}")


def nats_topology(stream: str) -> JetStreamTopology:
    """The failure tests' JetStream stream `stream`, holding the subjects `fail-*`."""
    from dispytch.nats import JetStreamTopology

    return JetStreamTopology(stream=stream, subjects=(f"fail-{stream.removeprefix('FAIL_')}",))


def producer(backend: str, exchange: str | None = None) -> Producer:
    """A producer on a real broker, not started."""
    if backend == "kafka":
        from dispytch.kafka import KafkaProducer

        return KafkaProducer.create(KAFKA_BOOTSTRAP)
    if backend == "rabbitmq":
        from dispytch.rabbitmq import RabbitMQProducer

        assert exchange is not None, "RabbitMQ streams name their own exchange"
        return RabbitMQProducer.create(
            RABBITMQ_URL, exchange=exchange, reconnect_interval=RABBITMQ_RECONNECT_INTERVAL
        )
    if backend == "redis":
        from dispytch.redis import RedisStreamProducer

        return RedisStreamProducer.create(REDIS_URL)
    if backend == "nats":
        from dispytch.nats import NatsProducer

        return NatsProducer(NATS_URL)
    raise ValueError(f"no such broker backend: {backend!r}")
