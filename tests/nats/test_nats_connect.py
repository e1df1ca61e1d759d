"""Connecting: a server that is not there is reported at once, without the password."""

from __future__ import annotations

import asyncio
import socket

import pytest

from dispytch.errors import BrokerUnavailableError
from dispytch.nats import NatsConsumer, NatsProducer
from dispytch.testing.harness import message


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_start_without_a_server_raises_at_once_without_the_password() -> None:
    url = f"nats://user:s3cret@127.0.0.1:{_closed_port()}"
    consumer = NatsConsumer(url, "nobody", topics=["dispytch.x"], connect_timeout=30)
    with pytest.raises(BrokerUnavailableError) as caught:
        await asyncio.wait_for(consumer.start([]), 5)
    assert "s3cret" not in str(caught.value)
    await consumer.close()


async def test_send_without_a_server_raises_within_its_timeout() -> None:
    producer = NatsProducer(f"nats://127.0.0.1:{_closed_port()}", connect_timeout=30)
    with pytest.raises(BrokerUnavailableError):
        await asyncio.wait_for(producer.send(message("dispytch.x", b"v"), timeout=2), 5)
    await producer.close()
