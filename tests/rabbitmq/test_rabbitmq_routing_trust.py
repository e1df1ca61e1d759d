"""Which handler runs is decided by the routing key the broker routed by, never by a header.

A publisher that RabbitMQ lets publish on one routing key only (topic permissions) must not
reach the handlers of another routing key by writing Dispytch's own headers, even when the
group's queue is bound to both.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispytch import Event, EventListener
from dispytch.rabbitmq import RabbitMQConsumer
from dispytch.reasons import DeadLetterReason

from .conftest import Names, aio_pika, eventually

pytestmark = pytest.mark.rabbitmq

ENVELOPE = json.dumps({"id": "e-1", "type": "reset", "body": {}, "timestamp": 0}).encode()


def listener_on_both(url: str, names: Names, ran: list[str]) -> EventListener:
    topology = names.topology()
    consumer = RabbitMQConsumer.create(url, names.group("g"), exchange=topology.exchange)
    listener = EventListener(consumer, dead_letter_unhandled=True)

    @listener.handler(topic="public:orders", event="reset")
    async def on_public(event: Event[dict[str, Any]]) -> None:
        ran.append(f"public {event.topic}")

    @listener.handler(topic="admin:reset", event="reset")
    async def on_admin(event: Event[dict[str, Any]]) -> None:
        ran.append(f"admin {event.topic}")

    return listener


@pytest.mark.parametrize(
    "forged",
    [
        {"dispytch-topic": "admin:reset"},
        {"dispytch-topic": "admin:reset", "dispytch-routing-key": "admin.reset"},
    ],
    ids=["topic-header", "topic-and-routing-key-headers"],
)
async def test_a_header_cannot_send_a_message_to_another_routing_keys_handler(
    rabbitmq_url: str, names: Names, admin: Any, forged: dict[str, str]
) -> None:
    topology = names.topology()
    ran: list[str] = []
    async with listener_on_both(rabbitmq_url, names, ran):
        exchange = await admin.get_exchange(topology.exchange)
        # raw aio-pika, as a publisher allowed on "public.orders" only would do it
        await exchange.publish(aio_pika.Message(ENVELOPE, headers=forged), "public.orders")
        dead_letters = await admin.get_queue(topology.dead_letter_queue)
        letters: list[Any] = []

        async def handled_or_dead_lettered() -> bool | None:
            letter = await dead_letters.get(fail=False, no_ack=True)
            if letter is not None:
                letters.append(letter)
            return True if ran or letters else None

        await eventually(handled_or_dead_lettered)
    # the header did not match the routing key: it was ignored, the topic is the routing key
    # ("public.orders" is not the handler topic "public:orders"), so no handler matched
    assert ran == []
    (letter,) = letters
    reason = DeadLetterReason.from_headers(dict(letter.headers))
    assert reason is not None
    assert (reason.stage, reason.original_topic) == ("unhandled", "public.orders")
    assert letter.routing_key == "public.orders"


async def test_a_header_that_restores_the_delimiter_is_honoured(
    rabbitmq_url: str, names: Names, admin: Any
) -> None:
    topology = names.topology()
    ran: list[str] = []
    async with listener_on_both(rabbitmq_url, names, ran):
        exchange = await admin.get_exchange(topology.exchange)
        await exchange.publish(
            aio_pika.Message(ENVELOPE, headers={"dispytch-topic": "admin:reset"}), "admin.reset"
        )
        await exchange.publish(
            aio_pika.Message(ENVELOPE, headers={"dispytch-topic": "public:orders"}),
            "public.orders",
        )

        async def both() -> bool | None:
            return True if len(ran) == 2 else None

        await eventually(both)
    assert sorted(ran) == ["admin admin:reset", "public public:orders"]
