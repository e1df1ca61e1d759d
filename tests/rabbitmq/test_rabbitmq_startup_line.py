"""The listener's start-up line on RabbitMQ (issue 16, item 7): credentials masked."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest

from dispytch import EventListener
from dispytch.events import Event
from dispytch.rabbitmq import RabbitMQConsumer

from .conftest import Names


async def test_the_start_up_line_names_backend_group_queue_and_handlers(
    rabbitmq_url: str, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dispytch")
    topology = names.topology()
    group = names.group("svc")
    consumer = RabbitMQConsumer.create(rabbitmq_url, group, exchange=topology.exchange)
    listener = EventListener(consumer, max_concurrency=3)

    @listener.handler(topic="orders", event="placed", name="place_order")
    async def place(event: Event[dict[str, object]]) -> None: ...

    async with listener:
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("listening:")]
    [line] = lines
    password = urlsplit(rabbitmq_url).password
    assert password
    assert f":{password}@" not in line
    assert ":******@" in line
    assert f"RabbitMQConsumer(group={group!r}, url=" in line
    assert f"queue={topology.queue(group)!r})" in line
    assert line.endswith("; subscriptions: 'orders'; 1 handler(s): place_order; max_concurrency=3")
