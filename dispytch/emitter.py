"""`EventEmitter`: turns `EventBase` instances into messages and hands them to a producer."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any

from pydantic_core import PydanticSerializationError

from dispytch.backends.base import OutgoingMessage, Producer, confirmed_messages
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
from dispytch.middleware.context import EmitContext, EmitMiddleware, compose
from dispytch.serialization.base import CONTENT_TYPE_HEADER, Serializer
from dispytch.serialization.codec import Codec, Encoded, JSONCodec, SerializerCodec
from dispytch.serialization.envelope_json import encode_event
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
        codec: Codec | None = None,
        middleware: Sequence[EmitMiddleware] = (),
        timeout: float | None = None,
        topic_delimiter: str | None = None,
    ) -> None:
        """`codec`: the wire format of events whose class has no `__codec__` (JSON by
        default; `serializer`, a 0.10-style serializer, still works). `middleware`: emit
        middleware, the first the outermost (see docs/middleware.md). `topic_delimiter`: the
        listeners' delimiter, refused inside `{field}` values of topics; by default read from
        each `__topic__` template (see `dispytch.topics`)."""
        self.producer = producer
        self.topic_delimiter = topic_delimiter
        if codec is None:
            codec = JSONCodec() if serializer is None else SerializerCodec(serializer, None)
        self.codec: Codec = codec
        self._middleware: list[EmitMiddleware] = []
        #: the emit middleware chain, composed when middleware is added (None: none)
        self._chain: Callable[[EmitContext], Awaitable[Any]] | None = None
        for each in middleware:
            self.emit_middleware(each)
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

    def emit_middleware(self, middleware: EmitMiddleware) -> EmitMiddleware:
        """Add (as a decorator) a middleware around every emit: it sees the event and the
        outgoing message before the producer is called, and the outcome after."""
        self._middleware.append(middleware)
        self._chain = compose(self._middleware, self._send_in_chain)
        return middleware

    async def emit(
        self,
        event: EventBase,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        prepared = self._prepare(event, headers)
        message = prepared if type(prepared) is OutgoingMessage else await prepared.finish()  # type: ignore[union-attr]
        wait = self.timeout if timeout is None else timeout
        try:
            if self._chain is None:
                await self._send(message, wait)
            else:
                await self._chain(EmitContext(event, message, wait))
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
            prepare = self._prepare
            # one at a time: a codec that awaits finishes an event before the next is prepared
            messages = [
                prepared
                if type(prepared := prepare(event, None)) is OutgoingMessage
                else await prepared.finish()  # type: ignore[union-attr]
                for event in event_list
            ]
        except EmitError as error:
            error.confirmed, error.unconfirmed = (), tuple(event_list)
            raise
        if not messages:
            return
        wait = self.timeout if timeout is None else timeout
        if self._chain is not None:
            await self._emit_each(event_list, messages, wait)
            return
        try:
            with _as_emit_errors():
                await self._ensure_started()
                await self.producer.send_many(messages, timeout=wait)
        except EmitError as error:
            stored = {id(message) for message in confirmed_messages(error)}
            error.confirmed = tuple(
                e for e, m in zip(event_list, messages, strict=True) if id(m) in stored
            )
            error.unconfirmed = tuple(
                e for e, m in zip(event_list, messages, strict=True) if id(m) not in stored
            )
            raise

    async def _emit_each(
        self, events: list[EventBase], messages: list[OutgoingMessage], wait: float | None
    ) -> None:
        """`emit_many` through emit middleware: each event on its own (concurrently), as the
        middleware wraps one send; the error names what was confirmed, as without it."""
        chain = self._chain
        assert chain is not None
        results = await asyncio.gather(
            *(chain(EmitContext(e, m, wait)) for e, m in zip(events, messages, strict=True)),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if not failed:
            return
        first = failed[0]
        error = first if isinstance(first, EmitError) else EmitError(str(first))
        error.confirmed = tuple(
            e for e, r in zip(events, results, strict=True) if not isinstance(r, BaseException)
        )
        error.unconfirmed = tuple(
            e for e, r in zip(events, results, strict=True) if isinstance(r, BaseException)
        )
        if error is first:
            raise error
        raise error from first

    async def _send_in_chain(self, context: EmitContext) -> None:
        """The end of the emit middleware chain: the producer, and the outcome."""
        if context.outcome is not None:
            raise RuntimeError("call_next() was called twice for one emit")
        try:
            await self._send(context.message, context.timeout)
        except EmitTimeoutError as error:
            context.outcome, context.error = "timed_out", error
            raise
        except EmitError as error:
            context.outcome, context.error = "failed", error
            raise
        context.outcome = "sent"

    async def _send(self, message: OutgoingMessage, timeout: float | None) -> None:
        """The producer's send (`_as_emit_errors`, as a plain `try`: this runs per emit)."""
        try:
            if not self._started_here():
                await self._ensure_started()
            await self.producer.send(message, timeout=timeout)
        except BackendError as error:
            if isinstance(error, EmitError):
                raise
            raise _as_emit_error(error) from error

    def to_message(
        self, event: EventBase, headers: Mapping[str, str] | None = None
    ) -> OutgoingMessage:
        """The message `emit` would send for `event` (useful in tests), when its codec
        encodes without awaiting."""
        prepared = self._prepare(event, headers)
        if type(prepared) is not OutgoingMessage:
            prepared.abandon()  # type: ignore[union-attr]
            raise EventSerializationError(
                f"the codec of {type(event).__name__} encodes asynchronously; "
                "to_message() cannot wait for it (emit() can)"
            )
        return prepared

    def _prepare(
        self, event: EventBase, headers: Mapping[str, str] | None
    ) -> OutgoingMessage | _Encoding:
        """The message for `event`; a coroutine that makes it when its codec must await."""
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
        codec: Codec = event_class.__codec__ or self.codec
        try:
            encoded = encode_event(codec, event, event_type, timestamp_ms)
        except _SERIALIZATION_ERRORS as exc:
            raise _serialization_error(event, exc) from exc
        if type(encoded) is tuple:
            return _message(event, topic, timestamp_ms, codec, encoded, headers)
        return _Encoding(event, topic, timestamp_ms, codec, encoded, headers)  # type: ignore[arg-type]

    def _started_here(self) -> bool:
        """Started, not closed, in this event loop: no `_ensure_started()` needed."""
        return self._started and self._loop.other_loop() is None

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
    """Whatever the backend raises, `emit` raises an `EmitError` (see `_as_emit_error`)."""
    try:
        yield
    except BackendError as error:
        if isinstance(error, EmitError):
            raise
        raise _as_emit_error(error) from error


def _as_emit_error(error: BackendError) -> ProducerError:
    """A backend error that is not an `EmitError` as a `ProducerError`
    (`ProducerUnavailableError` when the broker is unreachable, which is also a
    `BrokerUnavailableError`)."""
    if isinstance(error, BrokerUnavailableError):
        return ProducerUnavailableError(str(error))
    return ProducerError(str(error))


#: what a body or a codec raises for an event that cannot be serialized
_SERIALIZATION_ERRORS = (PydanticSerializationError, TypeError, ValueError)


def _serialization_error(event: EventBase, error: Exception) -> EventSerializationError:
    return EventSerializationError(
        f"cannot serialize {type(event).__name__} (id {event.id}): {error}"
    )


def _message(
    event: EventBase,
    topic: str,
    timestamp_ms: int,
    codec: Codec,
    encoded: Encoded,
    headers: Mapping[str, str] | None,
) -> OutgoingMessage:
    """The message for an encoded event: its content type, then the codec's headers, then
    the caller's."""
    value, codec_headers = encoded
    message_headers = {CONTENT_TYPE_HEADER: codec.content_type}
    if codec_headers:
        message_headers.update(codec_headers)
    if headers:
        message_headers.update(headers)
    return OutgoingMessage(
        topic, value, _key_of(event), message_headers, event.__backend_config__, timestamp_ms
    )


class _Encoding:
    """A message whose codec is still encoding it (awaiting, say, a schema)."""

    __slots__ = ("codec", "encoding", "event", "headers", "timestamp_ms", "topic")

    def __init__(
        self,
        event: EventBase,
        topic: str,
        timestamp_ms: int,
        codec: Codec,
        encoding: Awaitable[Encoded],
        headers: Mapping[str, str] | None,
    ) -> None:
        self.event = event
        self.topic = topic
        self.timestamp_ms = timestamp_ms
        self.codec = codec
        self.encoding = encoding
        self.headers = headers

    async def finish(self) -> OutgoingMessage:
        try:
            encoded = await self.encoding
        except _SERIALIZATION_ERRORS as exc:
            raise _serialization_error(self.event, exc) from exc
        return _message(
            self.event, self.topic, self.timestamp_ms, self.codec, encoded, self.headers
        )

    def abandon(self) -> None:
        close = getattr(self.encoding, "close", None)  # a coroutine never awaited
        if close is not None:
            close()


def _key_of(event: EventBase) -> bytes | None:
    field = type(event).__key__
    if field is None:
        return None
    value: Any = getattr(event, field)
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()
