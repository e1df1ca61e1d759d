"""The listener's start-up line on Kafka (issue 16, item 7)."""

from __future__ import annotations

import logging

import pytest

from dispytch import EventListener
from dispytch.events import Event
from dispytch.kafka import KafkaConsumer

from .conftest import NewTopicFactory
from .kafka_helpers import group_name

pytestmark = pytest.mark.kafka


async def test_the_start_up_line_names_backend_group_servers_and_handlers(
    bootstrap: str, new_topic: NewTopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dispytch")
    topic = await new_topic()
    group = group_name()
    listener = EventListener(KafkaConsumer.create(bootstrap, group), max_concurrency=5)

    @listener.handler(topic=topic, event="placed", name="place_order")
    async def place(event: Event[dict[str, object]]) -> None: ...

    async with listener:
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("listening:")]
    assert lines == [
        f"listening: KafkaConsumer(group={group!r}, bootstrap_servers={bootstrap!r}); "
        f"subscriptions: {topic!r}; 1 handler(s): place_order; max_concurrency=5"
    ]


def test_a_password_in_a_bootstrap_url_is_masked() -> None:
    consumer = KafkaConsumer.create(["kafka://svc:s3cret@broker:9092", "other:9092"], "g")
    assert consumer.describe() == (
        "KafkaConsumer(group='g', bootstrap_servers='kafka://svc:******@broker:9092,other:9092')"
    )
    assert "s3cret" not in repr(consumer)
