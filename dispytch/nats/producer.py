"""`NatsProducer`: publishes to JetStream and returns once the stream stored the message."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from dispytch.backends.base import OutgoingMessage, Producer, mark_confirmed
from dispytch.errors import (
    BrokerUnavailableError,
    EmitTimeoutError,
    MessageTooLargeError,
    ProducerError,
    UnroutableMessageError,
)
from dispytch.loops import LoopBinding, other_loop_error
from dispytch.nats._client import CONNECTION_ERRORS, Client, JetStreamContext, connect, nats
from dispytch.nats._subject_names import check_topic
from dispytch.nats.headers import to_nats
from dispytch.nats.topology import subject_of

#: how long a send waits for the stream's acknowledgement when the caller gives no timeout
DEFAULT_SEND_TIMEOUT = 30.0


class NatsProducer(Producer):
    """Publishes each message to its topic as the subject. A stream must hold the subject
    (a consumer's `JetStreamTopology` creates it); otherwise `UnroutableMessageError`."""

    def __init__(
        self, url: str, *, topic_delimiter: str = ":", connect_timeout: float = 10.0
    ) -> None:
        self.url = url
        #: the delimiter of the application's topics, turned into "." in subjects
        self.topic_delimiter = topic_delimiter
        self.connect_timeout = connect_timeout
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._loop = LoopBinding()

    def __repr__(self) -> str:
        return "NatsProducer()"

    async def start(self, *, connect_timeout: float | None = None) -> None:
        """Connect (within `connect_timeout`, default the producer's own)."""
        old_loop = self._loop.other_loop()
        if self._client is not None and old_loop is None:
            return
        if self._client is not None and old_loop is not None:
            if not old_loop.is_closed():
                raise other_loop_error("NatsProducer", old_loop)
            self._client = self._js = None  # its loop is gone, and so is its connection
        wait = self.connect_timeout if connect_timeout is None else connect_timeout
        client = await connect(self.url, connect_timeout=wait)
        self._client, self._js = client, client.jetstream()
        self._loop.bind()

    def check_topic(self, topic: str) -> None:
        check_topic(topic, self.topic_delimiter)

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        check_topic(message.topic, self.topic_delimiter)
        wait = DEFAULT_SEND_TIMEOUT if timeout is None else timeout
        js = self._js
        if js is None or self._loop.other_loop() is not None:
            began = asyncio.get_running_loop().time()
            js = await self._ready(min(wait, self.connect_timeout))  # a send's bound covers it
            wait = max(wait - (asyncio.get_running_loop().time() - began), 0.001)
        headers = to_nats(message.headers, message.key)
        subject = subject_of(message.topic, self.topic_delimiter)
        try:
            await js.publish(subject, message.value, timeout=wait, headers=headers)
        except nats.errors.NoRespondersError as exc:
            raise UnroutableMessageError(
                f"no JetStream stream holds the subject {message.topic!r}"
            ) from exc
        except nats.errors.MaxPayloadError as exc:
            raise MessageTooLargeError(f"message on {message.topic!r}: {exc}") from exc
        except (nats.errors.TimeoutError, asyncio.TimeoutError) as exc:
            raise EmitTimeoutError(
                f"NATS did not confirm a message on {message.topic!r} within {wait}s"
            ) from exc
        except CONNECTION_ERRORS as exc:
            raise _unavailable(message.topic, exc) from exc
        except nats.errors.Error as exc:
            raise ProducerError(f"NATS refused a message on {message.topic!r}: {exc}") from exc
        except nats.js.errors.Error as exc:
            raise ProducerError(f"JetStream refused a message on {message.topic!r}: {exc}") from exc

    async def send_many(
        self, messages: Sequence[OutgoingMessage], *, timeout: float | None = None
    ) -> None:
        """Publishes all at once (pipelined on the connection) and waits for every ack."""
        for message in messages:
            check_topic(message.topic, self.topic_delimiter)
        await self._ready(self.connect_timeout if timeout is None else timeout)
        results = await asyncio.gather(
            *(self.send(message, timeout=timeout) for message in messages),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if not failures:
            return
        confirmed = [m for m, result in zip(messages, results, strict=True) if result is None]
        error = failures[0]
        if not isinstance(error, Exception):
            raise error
        raise mark_confirmed(error, confirmed)

    async def close(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):
                await client.flush(timeout=5)
            await client.close()

    async def _ready(self, connect_timeout: float) -> JetStreamContext:
        if self._js is None or self._loop.other_loop() is not None:
            await self.start(connect_timeout=connect_timeout)
        assert self._js is not None
        return self._js


def _unavailable(topic: str, exc: BaseException) -> ProducerError:
    from dispytch.errors import ProducerUnavailableError

    error: ProducerError = ProducerUnavailableError(
        f"NATS is not reachable; message on {topic!r} not stored: {type(exc).__name__}"
    )
    assert isinstance(error, BrokerUnavailableError)
    return error
