"""`EventEmitter`: turns `EventBase` instances into messages and hands them to a producer."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from pydantic_core import PydanticSerializationError

from dispytch.backends.base import OutgoingMessage, Producer, confirmed_messages
from dispytch.envelope import build_envelope
from dispytch.errors import (
    BackendError,
    BrokerUnavailableError,
    EmitError,
    EmitTimeoutError,
    EventSerializationError,
    ProducerError,
    ProducerUnavailableError,
)
from dispytch.events import EventBase
from dispytch.loops import LoopBinding
from dispytch.serialization.base import CONTENT_TYPE_HEADER, Serializer
from dispytch.serialization.json import JSONSerializer
from dispytch.topics import fill_topic

logger = logging.getLogger("dispytch.emitter")

TimeoutCallback = Callable[[EventBase], Awaitable[None] | None]


class EventEmitter:
    """Emits events through a producer.

    `emit` returns once the broker confirmed the message, and raises a `dispytch.errors.EmitError`
    otherwise: `EventSerializationError` (body cannot be serialized; its subclass
    `TopicFormatError`: `__topic__` names a missing field, or a field's value cannot be one
    topic segment, see `dispytch.topics`), `EmitTimeoutError` (no confirmation within
    `timeout` seconds; if an `on_timeout` callback is registered, it is called with the event
    instead), or the backend's `ProducerError`.
    """

    def __init__(
        self,
        producer: Producer,
        serializer: Serializer | None = None,
        *,
        timeout: float | None = None,
        topic_delimiter: str | None = None,
    ) -> None:
        """`topic_delimiter`: the listeners' delimiter, refused inside `{field}` values of
        topics; by default read from each `__topic__` template (see `dispytch.topics`)."""
        self.producer = producer
        self.topic_delimiter = topic_delimiter
        self.serializer: Serializer = serializer or JSONSerializer()
        self.timeout = timeout
        self._timeout_callback: TimeoutCallback | None = None
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._loop = LoopBinding()

    def on_timeout(self, callback: TimeoutCallback) -> TimeoutCallback:
        """Register (as a decorator) what to do with an event the broker did not confirm in
        time. With a callback, `emit` calls it instead of raising `EmitTimeoutError`."""
        self._timeout_callback = callback
        return callback

    async def emit(
        self,
        event: EventBase,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        message = self.to_message(event, headers)
        try:
            with _as_emit_errors():
                await self._ensure_started()
                await self.producer.send(
                    message, timeout=self.timeout if timeout is None else timeout
                )
        except EmitTimeoutError:
            if self._timeout_callback is None:
                raise
            logger.warning("event %s on %r was not confirmed in time", event.id, message.topic)
            result = self._timeout_callback(event)
            if inspect.isawaitable(result):
                await result

    async def emit_many(self, events: Iterable[EventBase], *, timeout: float | None = None) -> None:
        """Emit several events, letting the producer batch them; returns when all are confirmed.
        All events are serialized before anything is sent. Not atomic: the `EmitError` it
        raises lists the events the broker confirmed (`confirmed`) and the others
        (`unconfirmed`)."""
        event_list = list(events)
        try:
            messages = [self.to_message(event) for event in event_list]
        except EmitError as error:
            error.confirmed, error.unconfirmed = (), tuple(event_list)
            raise
        if not messages:
            return
        try:
            with _as_emit_errors():
                await self._ensure_started()
                await self.producer.send_many(
                    messages, timeout=self.timeout if timeout is None else timeout
                )
        except EmitError as error:
            stored = {id(message) for message in confirmed_messages(error)}
            error.confirmed = tuple(
                e for e, m in zip(event_list, messages, strict=True) if id(m) in stored
            )
            error.unconfirmed = tuple(
                e for e, m in zip(event_list, messages, strict=True) if id(m) not in stored
            )
            raise

    def to_message(
        self, event: EventBase, headers: Mapping[str, str] | None = None
    ) -> OutgoingMessage:
        """The message `emit` would send for `event` (useful in tests)."""
        if not isinstance(event, EventBase):
            raise EventSerializationError(
                f"emit() takes an EventBase instance, got {type(event).__name__}"
            )
        event_class = type(event)
        event_type = getattr(event_class, "__event_type__", None)
        if not isinstance(event_type, str) or not event_type:
            raise EventSerializationError(f"{event_class.__name__} has no __event_type__")
        topic = fill_topic(event, self.topic_delimiter)
        timestamp_ms = int(time.time() * 1000)
        try:
            body = event.model_dump(mode="json")
            value = self.serializer.serialize(
                build_envelope(event.id, event_type, body, timestamp_ms)
            )
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            raise EventSerializationError(
                f"cannot serialize {event_class.__name__} (id {event.id}): {exc}"
            ) from exc
        message_headers = {CONTENT_TYPE_HEADER: self.serializer.content_type}
        if headers:
            message_headers.update(headers)
        return OutgoingMessage(
            topic=topic,
            value=value,
            key=_key_of(event),
            headers=message_headers,
            config=event.__backend_config__,
            timestamp_ms=timestamp_ms,
        )

    async def _ensure_started(self) -> None:
        if self._closed:
            raise EmitError(
                "this emitter was closed (emit after close() is refused on every backend); "
                "create a new EventEmitter"
            )
        if self._loop.other_loop() is not None:
            # used in a new event loop: the producer's start() re-creates a client it owns, or
            # refuses at once (see dispytch.loops)
            self._started = False
            self._start_lock = asyncio.Lock()
        elif self._started:
            return
        async with self._start_lock:
            if not self._started:
                await self.producer.start()
                self._started = True
                self._loop.bind()

    async def close(self) -> None:
        """Close the producer. The emitter cannot be used afterwards (`emit` raises
        `EmitError`); closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._started = False
        await self.producer.close()

    async def __aenter__(self) -> EventEmitter:
        await self._ensure_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


@contextlib.contextmanager
def _as_emit_errors() -> Iterator[None]:
    """Whatever the backend raises, `emit` raises an `EmitError`: a backend error that is not
    one already becomes a `ProducerError` (`ProducerUnavailableError` when the broker is
    unreachable, which is also a `BrokerUnavailableError`)."""
    try:
        yield
    except EmitError:
        raise
    except BrokerUnavailableError as exc:
        raise ProducerUnavailableError(str(exc)) from exc
    except BackendError as exc:
        raise ProducerError(str(exc)) from exc


def _key_of(event: EventBase) -> bytes | None:
    field = type(event).__key__
    if field is None:
        return None
    value: Any = getattr(event, field)
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()
