"""One confirmed publish, with a deadline, whose failures come out as `dispytch.errors`."""

from __future__ import annotations

import asyncio
import time

from dispytch.errors import BrokerUnavailableError, UnroutableMessageError
from dispytch.rabbitmq._amqp import AbstractChannel, AbstractExchange, aio_pika, aiormq
from dispytch.rabbitmq._errors import publish_error


async def publish_confirmed(
    exchange: AbstractExchange,
    message: aio_pika.Message,
    routing_key: str,
    *,
    mandatory: bool,
    timeout: float | None,
    what: str = "the message",
    topic: str | None = None,
) -> None:
    """Publish and wait for the broker's confirm (the channel must have publisher confirms).

    While a robust connection is re-establishing itself, wait for it within `timeout`; with
    no timeout, fail at once with `BrokerUnavailableError` instead of waiting without bound.
    Errors name `what` (and `topic`, when given: named only then, as this runs per emit).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        closed = _closed_channel(exchange)
        if closed is not None:
            await _wait_for_channel(closed, deadline, _described(what, topic))
        publishing = exchange.publish(message, routing_key, mandatory=mandatory)
        if deadline is None:
            result = await publishing
        else:
            result = await asyncio.wait_for(publishing, max(0.001, deadline - time.monotonic()))
    except Exception as error:
        raise publish_error(error, _described(what, topic)) from error
    if result is not None and not isinstance(result, aiormq.spec.Basic.Ack):
        # a channel opened without on_return_raises hands the returned message back
        raise UnroutableMessageError(
            f"{_described(what, topic)} was returned: no queue is bound to {routing_key!r}"
        )


def _described(what: str, topic: str | None) -> str:
    return what if topic is None else f"{what} for {topic!r}"


def _closed_channel(exchange: AbstractExchange) -> AbstractChannel | None:
    """The exchange's channel when it is closed (checked without awaiting), else None."""
    channel: AbstractChannel | None = getattr(exchange, "channel", None)
    return channel if channel is not None and channel.is_closed else None


async def _wait_for_channel(channel: AbstractChannel, deadline: float | None, what: str) -> None:
    ready = getattr(channel, "ready", None)  # robust channels reopen by themselves
    if ready is None or deadline is None:
        raise BrokerUnavailableError(f"RabbitMQ is unreachable (channel closed), {what} not sent")
    try:
        await asyncio.wait_for(ready(), max(0.001, deadline - time.monotonic()))
    except asyncio.TimeoutError:
        raise BrokerUnavailableError(
            f"RabbitMQ did not come back within the timeout, {what} not sent"
        ) from None
