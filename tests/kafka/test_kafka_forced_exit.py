"""Ctrl-C twice on a Kafka worker (issue 16, item 8): status 130, no traceback, no
"Unclosed AIOKafkaConsumer"; the event whose handler was cancelled comes again."""

from __future__ import annotations

import pytest

from dispytch.kafka import KafkaConsumer

from ..core.forced_exit_worker import interrupt_twice
from .conftest import NewTopicFactory
from .kafka_helpers import group_name, receive_n

pytestmark = pytest.mark.kafka


async def test_a_second_sigint_forces_a_tidy_exit(
    bootstrap: str, new_topic: NewTopicFactory
) -> None:
    topic = await new_topic()
    group = group_name()
    status, log = await interrupt_twice(["kafka", bootstrap, topic, group])
    assert status == 130, log
    assert "received SIGINT again: forcing the exit" in log
    assert "forced exit: cancelling 1 running handler(s) now" in log
    assert "Traceback" not in log
    assert "Unclosed" not in log

    again = KafkaConsumer.create(bootstrap, group, topics=[topic])
    await again.start([])
    try:
        [redelivered] = await receive_n(again, 1)
        assert b'"type":"placed"' in redelivered.value.replace(b" ", b"")
    finally:
        await again.close()
