"""The FastAPI integration with a real FastAPI app: its lifespan starts and stops the listener
and the emitter (through the ASGI lifespan protocol, run by Starlette's TestClient); an endpoint
emits through the emitter dependency and the handler runs.

(No `from __future__ import annotations` here: FastAPI resolves the endpoints' annotations,
which name a local variable.)"""


import asyncio
import threading
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from dispytch import Event, EventBase, EventEmitter, EventListener, InMemoryBroker
from dispytch.fastapi import FastAPIEvents


class UserRegistered(EventBase):
    __topic__ = "users"
    __event_type__ = "user_registered"

    email: str


class Registration(BaseModel):
    email: str


class Service:
    """A FastAPI app whose endpoint emits, and a listener whose handler records."""

    def __init__(self, handler_seconds: float = 0.0) -> None:
        broker = InMemoryBroker()
        self.listener = EventListener(broker.consumer())
        self.emitter = EventEmitter(broker.producer())
        self.events = FastAPIEvents(emitter=self.emitter, listeners=[self.listener])
        self.welcomed: list[str] = []
        self.handled = threading.Event()
        self.app = FastAPI(lifespan=self.events.lifespan)
        emitter_dependency = Annotated[EventEmitter, Depends(self.events.emitter)]

        @self.listener.handler(topic="users", event="user_registered")
        async def welcome(event: Event[Registration]) -> None:
            await asyncio.sleep(handler_seconds)
            self.welcomed.append(event.body.email)
            self.handled.set()

        @self.app.post("/users", status_code=202)
        async def register(user: Registration, emitter: emitter_dependency) -> dict[str, str]:
            event = UserRegistered(email=user.email)
            await emitter.emit(event)
            return {"event_id": event.id}

        @self.app.get("/health")
        async def health() -> dict[str, object]:
            return self.events.health()


def test_an_endpoint_emits_and_the_handler_runs() -> None:
    service = Service()
    with TestClient(service.app) as client:
        assert service.listener.running, "the lifespan started the listener"
        assert client.get("/health").json()["status"] == "ok"
        response = client.post("/users", json={"email": "ada@example.com"})
        assert response.status_code == 202, response.text
        assert service.handled.wait(10), "the handler did not run"
        assert service.welcomed == ["ada@example.com"]
    assert not service.listener.running, "the lifespan's shutdown stopped the listener"
    assert service.events.health()["status"] == "unavailable"


def test_shutdown_lets_a_running_handler_finish() -> None:
    service = Service(handler_seconds=0.5)
    with TestClient(service.app) as client:
        assert client.post("/users", json={"email": "bob@example.com"}).status_code == 202
    # leaving the client ran the lifespan's shutdown: the listener drained before returning
    assert service.welcomed == ["bob@example.com"]


async def test_the_emitter_dependency_answers_503_outside_the_lifespan() -> None:
    service = Service()
    transport = httpx.ASGITransport(app=service.app)  # no lifespan: the app never started
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/users", json={"email": "eve@example.com"})
    assert response.status_code == 503
    assert "not running" in response.text
    assert not service.welcomed
