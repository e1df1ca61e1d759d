"""Liveness and readiness of a listener on the in-memory broker, over HTTP and as methods."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from dispytch import Event, EventListener, InMemoryBroker
from dispytch.backends.base import Delivery, OutgoingMessage
from dispytch.memory.consumer import InMemoryConsumer
from dispytch.observability.health import Health
from dispytch.observability.http import ObservabilityServer


async def _get(port: int, path: str) -> tuple[int, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    return response.status_code, response.json()


async def test_ready_while_receiving_not_while_stopping() -> None:
    broker = InMemoryBroker()
    listener = EventListener(broker.consumer("g"), shutdown_grace=10)
    health = Health(listener)
    entered, release = asyncio.Event(), asyncio.Event()

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Any]) -> None:
        entered.set()
        await release.wait()

    async with ObservabilityServer(health=health, port=0) as server:
        assert await _get(server.port, "/health/ready") == (
            503, {"status": "unavailable", "listeners": [{"state": "stopped", "connected": None}]},
        )  # fmt: skip
        assert (await _get(server.port, "/health/live"))[0] == 200
        await listener.__aenter__()
        assert await _get(server.port, "/health/ready") == (
            200, {"status": "ok", "listeners": [{"state": "receiving", "connected": True}]},
        )  # fmt: skip
        value = b'{"id": "1", "type": "e", "body": {}, "timestamp": 1}'
        broker.publish(OutgoingMessage(topic="t", value=value))
        await asyncio.wait_for(entered.wait(), 10)
        stopping = asyncio.create_task(listener.__aexit__(None, None, None))
        while listener.state != "stopping":  # the handler holds the shutdown
            await asyncio.sleep(0.01)
        status, body = await _get(server.port, "/health/ready")
        assert (status, body["listeners"][0]["state"]) == (503, "stopping")
        assert (await _get(server.port, "/health/live"))[0] == 200
        release.set()
        await asyncio.wait_for(stopping, 10)
        assert (await _get(server.port, "/health/ready"))[0] == 503
        assert (await _get(server.port, "/health/live"))[0] == 200  # stopped on purpose


class _FailingConsumer(InMemoryConsumer):
    async def receive_many(self, max_messages: int) -> list[Delivery]:
        raise RuntimeError("the consumer broke")


async def test_not_live_once_the_consumer_failed() -> None:
    broker = InMemoryBroker()
    consumer = _FailingConsumer(broker, "g", None, ":")
    listener = EventListener(consumer)
    health = Health(listener)

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Any]) -> None:
        pass

    listening = asyncio.create_task(listener.listen(handle_signals=False))
    done, _ = await asyncio.wait({listening}, timeout=10)
    assert done
    assert isinstance(listening.exception(), RuntimeError)
    live, ready = await health.live(), await health.ready()
    assert not live.ok
    assert not ready.ok
    assert live.as_dict() == {"status": "unavailable", "listeners": [{"state": "failed"}]}


async def test_a_connection_check_that_hangs_or_raises_is_not_ready() -> None:
    broker = InMemoryBroker()

    class Hanging(InMemoryConsumer):
        async def check_connection(self, timeout: float) -> bool | None:
            await asyncio.sleep(3600)
            return True

    listener = EventListener(Hanging(broker, "g", None, ":"))

    @listener.handler(topic="t", event="e")
    async def handle(event: Event[Any]) -> None:
        pass

    health = Health(listener, timeout=0.05)
    async with listener:
        report = await asyncio.wait_for(health.ready(), 10)
    assert not report.ok
    assert report.listeners == [{"state": "receiving", "connected": False}]
