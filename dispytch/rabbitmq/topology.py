"""Names and declarations of what Dispytch creates on RabbitMQ, and how topics map to keys.

One durable topic exchange carries every topic (`dispytch` by default). Each consumer group
owns one durable queue, `<exchange>.<group>`, bound with one binding key per handler topic.
Dead letters go to the durable topic exchange `<exchange>.dlx` (routing key = the original
routing key) and, through a `#` binding, to the durable queue `<exchange>.dlq`. A delayed
redelivery waits in `<queue>.delay.<ms>`, a queue whose messages expire after `ms` and are
dead-lettered straight back into `<queue>` through the default exchange.

Topics use the listener's delimiter (":" by default); AMQP topic routing splits keys on ".".
The routing key of a topic is the topic with its delimiter replaced by ".", and the binding
key of a subscription is its segments joined with "." (wildcard segments become "*"). Both
sides translate the same way, so matching agrees; the exact topic travels in a header, which
the consumer honours only where it maps to the delivered routing key (see `_routing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispytch.backends.base import Subscription
from dispytch.rabbitmq._amqp import AbstractChannel, AbstractExchange, AbstractQueue, aio_pika

AMQP_DELIMITER = "."
DEFAULT_EXCHANGE = "dispytch"


def routing_key_for(topic: str, delimiter: str | None) -> str:
    """The routing key a topic is published with (`None`: the topic unchanged)."""
    if not delimiter or delimiter == AMQP_DELIMITER:
        return topic
    return topic.replace(delimiter, AMQP_DELIMITER)


def binding_key_for(subscription: Subscription) -> str:
    """The binding key that routes a subscription's topics to a queue."""
    return subscription.glob("*", AMQP_DELIMITER)


def delay_bucket_ms(delay: float) -> int:
    """A delay in whole milliseconds, rounded to two significant digits (at least 1 ms).

    Each distinct delay needs a queue of its own; rounding keeps their number small when
    delays carry jitter (at most 90 queues per power of ten).
    """
    ms = max(1, round(delay * 1000))
    if ms < 100:
        return ms
    scale = int("1" + "0" * (len(str(ms)) - 2))
    return (ms + scale // 2) // scale * scale


@dataclass(frozen=True, slots=True)
class Topology:
    """The names one `RabbitMQConsumer.create()` / `RabbitMQProducer.create()` pair shares."""

    exchange: str = DEFAULT_EXCHANGE

    def queue(self, group: str) -> str:
        return f"{self.exchange}.{group}"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.exchange}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.exchange}.dlq"


def delay_queue_prefix(queue: str) -> str:
    return f"{queue}.delay."


def delay_queue_name(queue: str, ms: int) -> str:
    return f"{delay_queue_prefix(queue)}{ms}"


async def declare_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_dead_letters(
    channel: AbstractChannel, exchange: str, queue: str | None
) -> AbstractExchange:
    """The dead-letter exchange, and a queue that keeps everything sent to it."""
    dlx = await declare_exchange(channel, exchange)
    if queue is not None:
        dlq = await channel.declare_queue(queue, durable=True)
        await dlq.bind(dlx, "#")
    return dlx


async def declare_delay_queue(channel: AbstractChannel, queue: str, ms: int) -> str:
    """Declare (again: that resets its expiry) the delay queue that feeds `queue` after `ms`."""
    name = delay_queue_name(queue, ms)
    # through the underlying channel: a robust channel would remember (and keep) every
    # declared queue object to declare it again after a reconnection
    underlay = await channel.get_underlay_channel()
    await underlay.queue_declare(
        name,
        durable=True,
        arguments={
            "x-message-ttl": ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue,
            # an unused delay queue goes away, but only well after its messages left it
            "x-expires": ms + 600_000,
        },
    )
    return name


async def declare_group_queue(
    channel: AbstractChannel,
    exchange: AbstractExchange,
    name: str,
    subscriptions: list[Subscription],
    arguments: dict[str, Any] | None,
) -> AbstractQueue:
    queue = await channel.declare_queue(name, durable=True, arguments=arguments or None)
    for key in dict.fromkeys(binding_key_for(s) for s in subscriptions):
        await queue.bind(exchange, key)
    return queue
