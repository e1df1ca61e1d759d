"""Publishes to the in-memory broker."""

from __future__ import annotations

from collections.abc import Sequence

from dispytch.backends.base import OutgoingMessage, Producer, mark_confirmed
from dispytch.errors import ProducerError
from dispytch.memory.queue import BrokerLink


class InMemoryProducer(Producer):
    def __init__(self, broker: BrokerLink) -> None:
        self.broker = broker
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        if self._closed:
            raise ProducerError("the in-memory producer is closed")
        self.broker.publish(message)

    async def send_many(
        self, messages: Sequence[OutgoingMessage], *, timeout: float | None = None
    ) -> None:
        for index, message in enumerate(messages):
            try:
                await self.send(message)
            except Exception as error:  # those before were stored, those after never sent
                mark_confirmed(error, messages[:index])
                raise

    async def close(self) -> None:
        self._closed = True
