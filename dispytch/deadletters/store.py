"""`DeadLetterStore`: what every backend's dead-letter reader provides."""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator
from types import TracebackType

from dispytch.deadletters.letter import DeadLetter


class DeadLetterStore(abc.ABC):
    """Reads the dead letters of one destination (a Kafka topic, a RabbitMQ queue) and replays
    them to their original topic.

    Reading never consumes: once a `read()` ends (exhausted, or closed early with `aclose()`),
    every letter it yielded and that was not replayed is where it was. `replay(letter)` is
    valid only while the `read()` that yielded the letter is open; it returns once the broker
    confirmed the republished message, and only then removes the letter (RabbitMQ: acks it;
    Kafka: records it as replayed, see docs/dead-letters.md). Close stores with `close()` or
    `async with`.
    """

    #: a short description of what is read ("Kafka topic 'orders.dlq'")
    source: str
    #: one destination holds the dead letters of every topic (RabbitMQ's dead-letter queue):
    #: a caller that wants one topic's letters filters by `original_topic`
    holds_every_topic: bool = False

    @abc.abstractmethod
    def read(self, *, include_replayed: bool = False) -> AsyncGenerator[DeadLetter, None]:
        """The dead letters stored when the read started, oldest first.

        `include_replayed`: Kafka keeps replayed letters (a topic is append-only); they are
        left out unless this is True, and then come with `replayed=True`. Other backends
        remove replayed letters, so it changes nothing there.
        """

    @abc.abstractmethod
    async def pending(self) -> int:
        """How many letters a `read()` would yield at most now (for progress bars)."""

    @abc.abstractmethod
    async def replay(self, letter: DeadLetter) -> None:
        """Republish the letter's original bytes to its original topic, without the
        `dispytch-dlq-*` and `dispytch-attempt` headers; then remove the letter.
        Raises `NotReplayableError` when this letter cannot be replayed."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connections."""

    async def __aenter__(self) -> DeadLetterStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
