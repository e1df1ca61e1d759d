"""What middleware sees at each of its three points, and how a chain of them is built.

A middleware is an async callable `(context, call_next)`: it runs code before `await
call_next()`, may change what it is given, and sees the result (or the error) after. Chains are
composed once, when the listener starts (or the emitter's middleware is added), never per
message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dispytch.backends.base import Delivery, OutgoingMessage
from dispytch.retry import RetryPolicy

if TYPE_CHECKING:
    from dispytch.events import Event, EventBase
    from dispytch.outcomes import Outcome

ContextT = TypeVar("ContextT")
CallNext = Callable[[], Awaitable[Any]]
Middleware = Callable[[ContextT, CallNext], Awaitable[Any]]


class MessageContext:
    """One message as it arrives, before decoding, and (after `call_next`) its outcome.

    `event_id` and `event_type` are filled in once the message decoded (None before, and for
    bytes that are not an event). `outcome` is None until the message is settled."""

    __slots__ = ("_entered", "delivery", "event_id", "event_type", "outcome")

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.event_id: str | None = None
        self.event_type: str | None = None
        self.outcome: Outcome | None = None
        #: the core's processing began (`call_next` was awaited)
        self._entered = False

    @property
    def topic(self) -> str:
        return self.delivery.topic

    @property
    def value(self) -> bytes:
        return self.delivery.value

    @property
    def headers(self) -> Mapping[str, str]:
        return self.delivery.headers

    @property
    def key(self) -> bytes | None:
        return self.delivery.key

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self.delivery.metadata


class HandlerInfo(Protocol):
    """What a handler-call middleware sees of the handler (a registered `HandlerSpec`)."""

    @property
    def name(self) -> str: ...

    @property
    def topic(self) -> str: ...

    @property
    def event(self) -> str: ...

    @property
    def retry(self) -> RetryPolicy: ...


class HandlerCall:
    """One attempt of one handler: the decoded `event`, the `handler` (its `name`, `topic`,
    `event`, `retry`) and the `attempt` number (1 for the first)."""

    __slots__ = ("_called", "_run", "_segments", "_start", "attempt", "event", "handler")

    def __init__(
        self,
        event: Event[Any],
        handler: HandlerInfo,
        attempt: int,
        run: Any,
        segments: tuple[Any, ...],
        start: Callable[[Any, tuple[Any, ...], int], Awaitable[Any]],
    ) -> None:
        self.event = event
        self.handler = handler
        self.attempt = attempt
        self._run = run
        self._segments = segments
        #: calls the handler itself (its compiled plan), at the end of the chain
        self._start = start
        self._called = False


class EmitContext:
    """One emit: the `event` and the outgoing `message` (topic, key, headers, value; a
    middleware may change them before `call_next`). After `call_next`, `outcome` is "sent",
    "timed_out" or "failed" (`error` holds the `EmitError`)."""

    __slots__ = ("error", "event", "message", "outcome", "timeout")

    def __init__(self, event: EventBase, message: OutgoingMessage, timeout: float | None) -> None:
        self.event = event
        self.message = message
        self.timeout = timeout
        self.outcome: str | None = None
        self.error: BaseException | None = None


MessageMiddleware = Middleware[MessageContext]
HandlerMiddleware = Middleware[HandlerCall]
EmitMiddleware = Middleware[EmitContext]


def compose(
    middlewares: Sequence[Middleware[ContextT]], innermost: Callable[[ContextT], Awaitable[Any]]
) -> Callable[[ContextT], Awaitable[Any]]:
    """`middlewares[0]` outermost, `innermost` at the end of the chain."""
    call = innermost
    for middleware in reversed(middlewares):
        call = _link(middleware, call)
    return call


def _link(
    middleware: Middleware[ContextT], next_call: Callable[[ContextT], Awaitable[Any]]
) -> Callable[[ContextT], Awaitable[Any]]:
    def link(context: ContextT) -> Awaitable[Any]:
        return middleware(context, partial(next_call, context))

    return link
