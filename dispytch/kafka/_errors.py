"""aiokafka's exceptions, translated into `dispytch.errors` at the backend's boundary."""

from __future__ import annotations

import asyncio

from aiokafka import errors as kafka_errors

from dispytch.credentials import masked
from dispytch.errors import (
    BackendError,
    BrokerUnavailableError,
    EmitTimeoutError,
    MessageTooLargeError,
    NotEnoughReplicasError,
    ProducerError,
)
from dispytch.kafka._client_logs import retried_produce_error

_TOO_LARGE = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
)
_NOT_ENOUGH_REPLICAS = (
    kafka_errors.NotEnoughReplicasError,
    kafka_errors.NotEnoughReplicasAfterAppendError,
)
#: a retried produce error older than this did not keep the message from being confirmed
_RETRIED_RECENTLY = 5.0
_UNAVAILABLE = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.NodeNotReadyError,
    ConnectionError,
    OSError,
)


def producer_error(exc: BaseException, topic: str) -> BackendError:
    """The dispytch error for an exception raised while sending to `topic`."""
    if isinstance(exc, _TOO_LARGE):
        return MessageTooLargeError(masked(f"message for topic {topic!r} is too large: {exc}"))
    if isinstance(exc, _NOT_ENOUGH_REPLICAS):
        return _not_enough_replicas(topic, type(exc).__name__)
    if isinstance(exc, kafka_errors.KafkaTimeoutError | asyncio.TimeoutError):
        # aiokafka retries what the partition leader refuses for a passing reason (no leader
        # yet, too few replicas in sync): the last refusal says why nothing was confirmed
        retried = retried_produce_error(topic, _RETRIED_RECENTLY)
        if retried is not None and "NotEnoughReplicas" in retried:
            return _not_enough_replicas(topic, retried)
        why = "" if retried is None else f" (the broker kept answering {retried})"
        return EmitTimeoutError(f"Kafka did not confirm the message for {topic!r} in time{why}")
    if isinstance(exc, _UNAVAILABLE):
        return BrokerUnavailableError(masked(f"Kafka is unreachable: {exc}"))
    return ProducerError(masked(f"Kafka refused the message for topic {topic!r}: {exc!r}"))


def _not_enough_replicas(topic: str, answer: str) -> NotEnoughReplicasError:
    return NotEnoughReplicasError(
        f"Kafka did not confirm the message for {topic!r}: too few replicas of its partition "
        f"are in sync (fewer than the topic's min.insync.replicas; the broker answered {answer})"
    )


def connection_error(exc: BaseException, what: str) -> BackendError:
    """The dispytch error for an exception raised while connecting or fetching."""
    if isinstance(exc, _UNAVAILABLE):
        return BrokerUnavailableError(masked(f"Kafka is unreachable ({what}): {exc}"))
    return BackendError(masked(f"Kafka failed ({what}): {exc!r}"))


#: exceptions that `producer_error` / `connection_error` translate
KAFKA_EXCEPTIONS: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaError,
    ConnectionError,
    OSError,
)
#: what sending may raise: client errors, our timeout, aiokafka's argument checks (asserts)
SEND_EXCEPTIONS: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,
    AssertionError,
    *KAFKA_EXCEPTIONS,
)
