"""What a listener runs: its handlers, their middleware and the dependency overrides.

`EventListener` is a `HandlerRegistry`; the registry keeps what is registered and binds it
(middleware composed, overrides compiled) once, when the listener starts and when the overrides
change. Nothing here runs per message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dispytch.binding import bind
from dispytch.dispatch import Dispatcher
from dispytch.middleware.context import HandlerMiddleware, MessageMiddleware, compose
from dispytch.overrides import DependencyOverrides
from dispytch.retry import Backoff
from dispytch.routing.group import HandlerFunc, HandlerGroup, HandlerSpec
from dispytch.routing.patterns import Subscription
from dispytch.routing.router import Router


class HandlerRegistry:
    def __init__(
        self,
        router: Router,
        dispatcher: Dispatcher,
        check_subscription: Callable[[Subscription], None] | None = None,
    ) -> None:
        self._router = router
        #: the backend's topic-name check (`Consumer.check_subscription`)
        self._check_subscription = check_subscription
        self._dispatcher = dispatcher
        self._message_middleware: list[MessageMiddleware] = []
        self._handler_middleware: list[HandlerMiddleware] = []
        self._overrides = DependencyOverrides(self._bind_handlers)
        #: whether the listener runs (no handler or middleware may be added then)
        self._running = False
        self._own_handlers = HandlerGroup()
        self._own_handlers.attach(self)

    def handler(
        self,
        *,
        topic: str,
        event: str,
        retries: int = 0,
        retry_on: type[BaseException] | Sequence[type[BaseException]] | None = None,
        retry_interval: float | None = None,
        backoff: Backoff | None = None,
        delayed_retries: bool = False,
        name: str | None = None,
        middleware: Sequence[HandlerMiddleware] = (),
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Register a handler directly on the listener (see `HandlerGroup.handler`)."""
        return self._own_handlers.handler(
            topic=topic,
            event=event,
            retries=retries,
            retry_on=retry_on,
            retry_interval=retry_interval,
            backoff=backoff,
            delayed_retries=delayed_retries,
            name=name,
            middleware=middleware,
        )

    @property
    def dependency_overrides(self) -> DependencyOverrides:
        """`listener.dependency_overrides[get_db] = fake_db`: call `fake_db` wherever a handler
        (or a dependency, at any depth) asks for `get_db`; `del` or `.clear()` undoes it. Takes
        effect at once, running or not. See docs/testing.md."""
        return self._overrides

    @dependency_overrides.setter
    def dependency_overrides(
        self, overrides: Mapping[Callable[..., Any], Callable[..., Any]]
    ) -> None:
        self._overrides.replace(overrides)

    def message_middleware(self, middleware: MessageMiddleware) -> MessageMiddleware:
        """Add (as a decorator) a middleware around every message: it sees the raw delivery
        before decoding and, after `call_next`, the outcome it was settled with. The first
        added is the outermost. See docs/middleware.md."""
        self._refuse_while_running("message middleware")
        self._message_middleware.append(middleware)
        return middleware

    def handler_middleware(self, middleware: HandlerMiddleware) -> HandlerMiddleware:
        """Add (as a decorator) a middleware around every attempt of every handler, outside
        the groups' and the handlers' own. See docs/middleware.md."""
        self._refuse_while_running("handler middleware")
        self._handler_middleware.append(middleware)
        return middleware

    def _refuse_while_running(self, what: str) -> None:
        if self._running:
            raise RuntimeError(f"{what} must be added before the listener starts")

    def _bind_handlers(self) -> None:
        """Compose the middleware and compile the dependency overrides, once, for every
        handler (when the listener starts, and when its overrides change)."""
        overrides = dict(self._overrides)
        middleware = tuple(self._handler_middleware)
        self._router.bind(lambda spec: bind(spec, middleware, overrides))
        dispatcher = self._dispatcher
        if dispatcher.one_pass is not None:
            dispatcher.one_pass.reset()
        dispatcher.message_chain = (
            compose(self._message_middleware, dispatcher.innermost)
            if self._message_middleware
            else None
        )

    def add_handler_group(self, group: HandlerGroup) -> None:
        """Add the group's handlers, and those registered on it later (until the listener
        starts; after that, registering one raises). Adding a group twice changes nothing."""
        if group.attached_to(self):
            return
        for spec in group.handlers:
            self._check_handler(spec)
        for spec in group.handlers:
            self._router.add(spec)
        group.attach(self)

    @property
    def handlers(self) -> tuple[HandlerSpec, ...]:
        """The registered handlers, read-only (tools such as `dispytch asyncapi` read them)."""
        return tuple(self._router.specs)

    @property
    def topic_delimiter(self) -> str:
        return self._router.delimiter

    def _check_handler(self, spec: HandlerSpec) -> None:
        """Raise if `spec` cannot be added (the listener started, or the router refuses it)."""
        if self._running:
            raise RuntimeError(
                f"handler {spec.name!r}: handlers must be added before the listener starts"
            )
        if self._check_subscription is not None:
            # a topic name the backend refuses fails here, not at start or after a broker timeout
            self._check_subscription(Subscription.parse(spec.topic, self._router.delimiter))
        self._router.check(spec)

    def _add_handler(self, spec: HandlerSpec) -> None:
        self._check_handler(spec)
        self._router.add(spec)
