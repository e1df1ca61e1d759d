"""`HandlerGroup`: handlers declared together, added to a listener later."""

from __future__ import annotations

import re
import sys
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dispytch.di.compile import Overrides, compile_handler
from dispytch.di.plan import HandlerPlan
from dispytch.errors import HandlerRegistrationError
from dispytch.retry import Backoff, RetryPolicy

if TYPE_CHECKING:
    from dispytch.middleware.context import HandlerMiddleware

HandlerFunc = TypeVar("HandlerFunc", bound=Callable[..., Any])

ANY_EVENT = "*"
_SEGMENT_NAME = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True, slots=True, eq=False)
class HandlerSpec:
    """One registered handler: what it listens to, how it is called, how it is retried.

    A listener runs its own copy of each spec (`dispytch.binding.bind`): with its dependency
    overrides compiled into `plan`, and its middleware composed into `attempt`."""

    topic: str
    event: str
    plan: HandlerPlan
    retry: RetryPolicy
    #: the handler's own handler-call middleware
    middleware: tuple[HandlerMiddleware, ...] = ()
    #: the handler-call middleware of the group it was registered on (the group's own list)
    group_middleware: Sequence[HandlerMiddleware] = ()
    #: compiles the handler again with dependency overrides
    recompile: Callable[[Overrides], HandlerPlan] | None = None
    #: calls one attempt `(run, segments, attempt number)`: the plan itself, or the listener's
    #: middleware chain around it on a listener's copy
    attempt: Callable[[Any, tuple[Any, ...], int], Awaitable[Any]] = field(
        default=None,
        repr=False,  # type: ignore[assignment]
    )

    def __post_init__(self) -> None:
        if self.attempt is None:
            object.__setattr__(self, "attempt", self.plan.start)

    @property
    def name(self) -> str:
        return self.plan.name


def segment_names(topic: str) -> tuple[str, ...]:
    names = tuple(_SEGMENT_NAME.findall(topic))
    for name in names:
        if not name.isidentifier():
            raise HandlerRegistrationError(
                f"topic {topic!r}: segment {{{name}}} must be a Python identifier"
            )
    if len(set(names)) != len(names):
        raise HandlerRegistrationError(f"topic {topic!r} names a segment twice")
    return names


class HandlerTarget(Protocol):
    """What a group was added to (a listener): it gets the handlers registered later too."""

    def _check_handler(self, spec: HandlerSpec) -> None:
        """Raise if `spec` cannot be added now; add nothing."""

    def _add_handler(self, spec: HandlerSpec) -> None: ...


class HandlerGroup:
    """A set of handlers, with an optional default topic and event type for all of them.

    A handler registered after the group was added to a listener is added to that listener
    too, or refused (with the error) if the listener cannot take it, for example because it
    has started: a handler is never left in a group without its listeners knowing.
    """

    def __init__(self, default_topic: str | None = None, default_event: str | None = None) -> None:
        self.default_topic = default_topic
        self.default_event = default_event
        self.handlers: list[HandlerSpec] = []
        #: handler-call middleware for every handler of the group (see docs/middleware.md)
        self.middleware: list[HandlerMiddleware] = []
        #: weak: a module-level group must not keep every listener of a test suite alive
        self._targets: weakref.WeakSet[HandlerTarget] = weakref.WeakSet()

    def attach(self, target: HandlerTarget) -> None:
        """Send the handlers registered from now on to `target` as well (the listener calls
        this in `add_handler_group`, after taking the group's current handlers)."""
        self._targets.add(target)

    def attached_to(self, target: HandlerTarget) -> bool:
        return target in self._targets

    def handler_middleware(self, middleware: HandlerMiddleware) -> HandlerMiddleware:
        """Add (as a decorator) a middleware around every call of the group's handlers,
        inside the listener's own. Added after a listener started, it applies from the
        listener's next start."""
        self.middleware.append(middleware)
        return middleware

    def handler(
        self,
        *,
        topic: str | None = None,
        event: str | None = None,
        retries: int = 0,
        retry_on: type[BaseException] | Sequence[type[BaseException]] | None = None,
        retry_interval: float | None = None,
        backoff: Backoff | None = None,
        delayed_retries: bool = False,
        name: str | None = None,
        middleware: Sequence[HandlerMiddleware] = (),
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Register an async function as the handler of `event` on `topic`.

        `topic` may hold `{name}` segments (bound to `TopicSegment` parameters) and `*` for any
        one segment; `event="*"` handles every event type. Retries: `retries` more attempts
        for exceptions in `retry_on`, waiting `retry_interval` seconds (or per `backoff`); with
        `delayed_retries`, the wait happens on the broker instead of in the listener.
        `middleware`: handler-call middleware for this handler only (innermost).
        """
        chosen_topic = topic if topic is not None else self.default_topic
        chosen_event = event if event is not None else self.default_event
        policy = RetryPolicy.build(retries, retry_on, retry_interval, backoff, delayed_retries)

        def register(func: HandlerFunc, _depth: int = 1) -> HandlerFunc:
            # the caller's locals resolve annotations naming local classes (future annotations)
            localns = sys._getframe(_depth).f_locals
            handler_name = name or getattr(func, "__qualname__", repr(func))
            if not chosen_topic:
                raise HandlerRegistrationError(
                    f"handler {handler_name!r} has no topic: pass topic=... "
                    "or give the HandlerGroup a default_topic"
                )
            if not chosen_event:
                raise HandlerRegistrationError(
                    f"handler {handler_name!r} has no event type: pass event=... "
                    "(or '*' for any) or give the HandlerGroup a default_event"
                )
            try:
                names = segment_names(chosen_topic)
            except HandlerRegistrationError as exc:
                raise HandlerRegistrationError(f"handler {handler_name!r}: {exc}") from None
            plan = compile_handler(func, names, handler_name, localns)
            recompile = partial(compile_handler, func, names, handler_name, localns)
            spec = HandlerSpec(
                chosen_topic,
                chosen_event,
                plan,
                policy,
                tuple(middleware),
                self.middleware,
                recompile,
            )
            targets = list(self._targets)
            for target in targets:  # all or nothing: checked everywhere before added anywhere
                target._check_handler(spec)
            self.handlers.append(spec)
            for target in targets:
                target._add_handler(spec)
            return func

        return register
