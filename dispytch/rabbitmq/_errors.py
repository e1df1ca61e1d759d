"""Translate aio-pika / aiormq failures into `dispytch.errors` at the backend's boundary."""

from __future__ import annotations

import asyncio

from dispytch.errors import (
    BackendError,
    BrokerUnavailableError,
    EmitTimeoutError,
    MessageTooLargeError,
    ProducerError,
    UnroutableMessageError,
)
from dispytch.rabbitmq._amqp import aiormq

_exc = aiormq.exceptions

#: the connection or channel is gone: nothing can be said about the message's fate
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    _exc.ChannelInvalidStateError,
    _exc.ConnectionClosed,
    _exc.AMQPConnectionError,
    ConnectionError,
    OSError,
)


def publish_error(error: BaseException, what: str) -> BackendError:
    """The Dispytch error for a failed, confirmed publish of `what` (for messages)."""
    if isinstance(error, BackendError):
        return error
    if isinstance(error, asyncio.TimeoutError):
        return EmitTimeoutError(f"the broker did not confirm {what} in time")
    if isinstance(error, _exc.PublishError):
        return UnroutableMessageError(f"{what} was returned: no queue is bound to its routing key")
    if isinstance(error, _exc.DeliveryError):
        return ProducerError(f"the broker refused {what}: {error}")
    if isinstance(error, _exc.ChannelPreconditionFailed) and "max size" in str(error):
        return MessageTooLargeError(f"{what} is larger than the broker accepts: {error}")
    if isinstance(error, CONNECTION_ERRORS):
        return BrokerUnavailableError(f"RabbitMQ is unreachable, {what} not confirmed: {error!r}")
    return ProducerError(f"publishing {what} failed: {error!r}")
