"""What telemetry says about a message: the attribute names of OpenTelemetry's messaging
semantic conventions (the 1.26+ names, as in `opentelemetry.semconv._incubating.attributes.
messaging_attributes`), the messaging system of a backend, and the attributes read from a
delivery's broker metadata. Pure: no OpenTelemetry import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
DESTINATION_TEMPLATE = "messaging.destination.template"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
MESSAGE_ID = "messaging.message.id"
BODY_SIZE = "messaging.message.body.size"
CONSUMER_GROUP = "messaging.consumer.group.name"
PARTITION = "messaging.destination.partition.id"
KAFKA_OFFSET = "messaging.kafka.offset"
RABBITMQ_ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"
RABBITMQ_DELIVERY_TAG = "messaging.rabbitmq.message.delivery_tag"
ERROR_TYPE = "error.type"

EVENT_TYPE = "dispytch.event.type"
HANDLER = "dispytch.handler"
ATTEMPT = "dispytch.attempt"
OUTCOME = "dispytch.outcome"
DEAD_LETTER_STAGE = "dispytch.dead_letter.stage"

#: the messaging system of each backend package (the semantic conventions' well-known values
#: where there is one)
_SYSTEMS = {
    "dispytch.kafka": "kafka",
    "dispytch.rabbitmq": "rabbitmq",
    "dispytch.redis": "redis",
    "dispytch.nats": "nats",
    "dispytch.memory": "dispytch_memory",
}


def messaging_system(backend_object: object) -> str:
    """The `messaging.system` of a consumer or producer, by the package it comes from."""
    module = type(backend_object).__module__
    for package, system in _SYSTEMS.items():
        if module == package or module.startswith(package + "."):
            return system
    return "dispytch"


def consumer_group(consumer: object) -> str | None:
    """The consumer group a consumer reads for (its public `group`), when it says."""
    group = getattr(consumer, "group", None)
    return group if isinstance(group, str) else None


def metadata_attributes(system: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Partition and offset (Kafka), routing key and delivery tag (RabbitMQ) of a delivery.
    Values from the broker are kept only when of the expected type."""
    found: dict[str, Any] = {}
    if system == "kafka":
        partition, offset = metadata.get("partition"), metadata.get("offset")
        if type(partition) is int:
            found[PARTITION] = str(partition)
        if type(offset) is int:
            found[KAFKA_OFFSET] = offset
    elif system == "rabbitmq":
        routing_key, tag = metadata.get("routing_key"), metadata.get("delivery_tag")
        if isinstance(routing_key, str):
            found[RABBITMQ_ROUTING_KEY] = routing_key[:255]
        if type(tag) is int:
            found[RABBITMQ_DELIVERY_TAG] = tag
    return found
