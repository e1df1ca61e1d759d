"""A handler's resolution plan, and running it for one event.

Plans are built once, when the handler is registered (`dispytch.di.compile`). At run time a plan
only walks precomputed tuples: no signature inspection, no type adapters built per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Protocol

from pydantic import BaseModel

from dispytch.events import Event

# How a parameter gets its value.
_FROM_EVENT = 0  # payload: the body type (None for the raw body)
_FROM_SEGMENT = 1  # payload: index into the plan's converted segment values
_FROM_DEPENDENCY = 2  # payload: a _DependencyNode

# How a dependency function is called.
_CALL_SYNC = 0
_CALL_ASYNC = 1
_CALL_SYNC_GENERATOR = 2
_CALL_ASYNC_GENERATOR = 3

# compared by exact type: isinstance() against these ABC subclasses is slow on the hot path
_GENERATOR_CM_TYPES: tuple[type, ...] = (
    contextlib._GeneratorContextManager,
    contextlib._AsyncGeneratorContextManager,
)

ParamSource = tuple[str, int, Any]

logger = logging.getLogger("dispytch.listener")


class EventSource(Protocol):
    """What a plan needs from the message being handled, when its Event parameters ask for
    more than one body type: the Event for each body type, and the attempt they carry."""

    attempt: int

    def event_for(self, body_type: type[BaseModel] | None) -> Event[Any]: ...


class _OneEvent:
    """The source of a plan called with a single Event (see `HandlerPlan.start`)."""

    __slots__ = ("event",)

    def __init__(self, event: Event[Any]) -> None:
        self.event = event

    def event_for(self, body_type: type[BaseModel] | None) -> Event[Any]:
        return self.event


#: what a plan is called with: the Event itself (`single_event` plans), or its source
Run = Event[Any] | EventSource


def _source(run: Run) -> Any:
    return _OneEvent(run) if type(run) is Event else run


class SegmentUse(typing.NamedTuple):
    segment: str
    validate: Callable[[str], Any]


class _DependencyNode:
    __slots__ = (
        "call_kind",
        "enter_context",
        "factory",
        "in_thread",
        "name",
        "params",
        "simple",
        "use_cache",
    )

    def __init__(
        self,
        factory: Callable[..., Any],
        call_kind: int,
        params: tuple[ParamSource, ...],
        use_cache: bool,
        enter_context: bool,
        name: str,
        in_thread: bool = False,
    ) -> None:
        self.factory = factory
        self.in_thread = in_thread
        self.call_kind = call_kind
        self.params = params
        self.use_cache = use_cache
        self.enter_context = enter_context
        self.name = name
        wrapped = getattr(factory, "__wrapped__", None)
        self.simple = (
            call_kind == _CALL_SYNC
            and not in_thread
            and not params
            and not enter_context
            and not inspect.isgeneratorfunction(wrapped)
            and not inspect.isasyncgenfunction(wrapped)
        )


class _CallState:
    """Per-event state of one plan call: the dependency cache and the teardown stack."""

    __slots__ = ("cache", "segments", "source", "stack")

    def __init__(self, source: EventSource, segments: tuple[Any, ...]) -> None:
        self.source = source
        self.segments = segments
        self.cache: dict[_DependencyNode, Any] = {}
        self.stack: AsyncExitStack | None = None

    async def enter(self, manager: Any, in_thread: bool = False) -> Any:
        if self.stack is None:
            self.stack = AsyncExitStack()
        if hasattr(manager, "__aenter__"):
            return await self.stack.enter_async_context(manager)
        if in_thread:
            return await self.stack.enter_async_context(_InThread(manager))
        return self.stack.enter_context(manager)


class _InThread:
    """A sync context manager entered and exited in a worker thread (`run_in_thread`)."""

    __slots__ = ("manager",)

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    async def __aenter__(self) -> Any:
        return await asyncio.to_thread(self.manager.__enter__)

    async def __aexit__(self, *exc_info: Any) -> Any:
        return await asyncio.to_thread(self.manager.__exit__, *exc_info)


class HandlerPlan:
    """How to call one handler: where each argument comes from.

    `start()` resolves the arguments and returns the handler's awaitable; awaiting it runs the
    handler, then the dependencies' teardowns (which see its error).
    """

    __slots__ = (
        "_by_position",
        "_flat",
        "_names",
        "body_type",
        "body_types",
        "func",
        "name",
        "params",
        "segment_uses",
        "single_event",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        name: str,
        params: tuple[ParamSource, ...],
        body_types: tuple[type[BaseModel] | None, ...],
        segment_uses: tuple[SegmentUse, ...],
        by_position: bool = False,
    ) -> None:
        self.func = func
        self.name = name
        self.params = params
        #: every body type the handler and its dependencies ask for; validated before the call
        self.body_types = body_types
        #: one body type at most: every Event parameter gets the same Event, built by the caller
        self.single_event = len(body_types) <= 1
        self.body_type = body_types[0] if body_types else None
        self.segment_uses = segment_uses
        dependencies = [payload for _, kind, payload in params if kind == _FROM_DEPENDENCY]
        # the common shape: every dependency is a plain function without parameters, used once
        self._flat = all(node.simple for node in dependencies) and len(set(dependencies)) == len(
            dependencies
        )
        #: the handler's leading parameters are `params`, in order: passed by position, which
        #: is cheaper than by name (see `_takes_by_position`)
        self._by_position = by_position
        self._names = tuple(name for name, _, _ in params)

    def convert_segments(self, raw: Mapping[str, str]) -> tuple[Any, ...]:
        """Convert the topic's segment texts for this handler (raises pydantic ValidationError)."""
        return tuple(use.validate(raw[use.segment]) for use in self.segment_uses)

    def start(self, run: Run, segments: tuple[Any, ...], attempt: int) -> Awaitable[Any]:
        """Attempt `attempt` of the handler's call: `run` is the Event all its Event parameters
        get (`single_event` plans), or else gives the Event for each body type."""
        run.attempt = attempt
        if not self._flat:
            return self._call_with_state(_source(run), segments)
        # The flat path: every dependency is a plain function without parameters, used once,
        # so there is nothing to cache or tear down and no per-event state to build.
        single = self.single_event
        args: list[Any] = []
        for _, kind, payload in self.params:
            if kind == _FROM_EVENT:
                args.append(run if single else run.event_for(payload))  # type: ignore[union-attr]
            elif kind == _FROM_SEGMENT:
                args.append(segments[payload])
            else:
                value = payload.factory()
                if type(value) in _GENERATOR_CM_TYPES:
                    return self._call_with_state(
                        _source(run), segments, self._made(args, payload, value)
                    )
                args.append(value)
        if self._by_position:
            return self.func(*args)  # type: ignore[no-any-return]
        return self.func(**dict(zip(self._names, args, strict=True)))  # type: ignore[no-any-return]

    def _made(
        self, args: list[Any], node: _DependencyNode, manager: Any
    ) -> dict[_DependencyNode, Any]:
        """The dependency values the flat path made before `node` returned a context manager
        (a plain function returning a @contextmanager object): the general path reuses them
        rather than calling those functions again, and enters `manager`."""
        made: dict[_DependencyNode, Any] = {}
        for (_, kind, payload), value in zip(
            self.params, args, strict=False
        ):  # args stop at `node`
            if kind == _FROM_DEPENDENCY:
                made[payload] = value
        made[node] = manager
        return made

    async def _call_with_state(
        self,
        source: EventSource,
        segments: tuple[Any, ...],
        made: dict[_DependencyNode, Any] | None = None,
    ) -> None:
        state = _CallState(source, segments)
        try:
            if made is not None:  # values the flat path made: reused; a context manager entered
                for node, value in made.items():
                    if type(value) in _GENERATOR_CM_TYPES:
                        value = await state.enter(value)
                    state.cache[node] = value
            await self.func(**(await _resolve(self.params, state)))
        except BaseException as exc:
            if state.stack is not None:
                teardown_error = await _tear_down_after(state.stack, exc)
                if teardown_error is not None:
                    raise teardown_error from None
            raise
        if state.stack is not None:
            # a teardown that fails after the handler succeeded fails the call: it may be the
            # commit of the handler's work (see "Teardown" in docs/concepts.md)
            await state.stack.aclose()


async def _tear_down_after(stack: AsyncExitStack, error: BaseException) -> BaseException | None:
    """Run the teardowns after the handler (or a dependency) raised `error`. A teardown that
    raises another Exception does not replace `error`, which stays the failure (retried per
    the handler's policy, named in the dead letter; or a cancellation, which must go on): it
    is logged, and noted on `error`. What to raise instead of `error`, if anything: a
    cancellation that came during the teardowns."""
    try:
        await stack.__aexit__(type(error), error, error.__traceback__)
    except BaseException as teardown_error:
        if teardown_error is error:
            return None
        if not isinstance(teardown_error, Exception):
            return teardown_error
        logger.error(
            "a dependency's teardown failed after the handler raised %s: %s",
            type(error).__name__,
            error,
            exc_info=teardown_error,
        )
        _add_note(
            error,
            f"then a dependency's teardown failed: {type(teardown_error).__name__}: "
            f"{teardown_error}",
        )
    return None


def _add_note(error: BaseException, note: str) -> None:
    add_note = getattr(error, "add_note", None)  # Python 3.11+
    if add_note is not None:
        add_note(note)
    else:
        error.__notes__ = [*getattr(error, "__notes__", ()), note]  # type: ignore[attr-defined]


async def _resolve(params: tuple[ParamSource, ...], state: _CallState) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for name, kind, payload in params:
        if kind == _FROM_DEPENDENCY:
            # only cached nodes are stored, apart from a value `call` made before switching paths
            if payload in state.cache:
                kwargs[name] = state.cache[payload]
            elif payload.simple:  # a plain sync function without parameters: no await needed
                value = payload.factory()
                if type(value) in _GENERATOR_CM_TYPES:
                    value = await state.enter(value)
                if payload.use_cache:
                    state.cache[payload] = value
                kwargs[name] = value
            else:
                kwargs[name] = await _dependency_value(payload, state)
        elif kind == _FROM_EVENT:
            kwargs[name] = state.source.event_for(payload)
        else:
            kwargs[name] = state.segments[payload]
    return kwargs


async def _dependency_value(node: _DependencyNode, state: _CallState) -> Any:
    kwargs = await _resolve(node.params, state) if node.params else {}
    kind = node.call_kind
    if kind == _CALL_SYNC:
        if node.in_thread:
            value = await asyncio.to_thread(node.factory, **kwargs)
        else:
            value = node.factory(**kwargs)
    elif kind == _CALL_ASYNC:
        value = await node.factory(**kwargs)
    else:  # generators were wrapped into context manager factories when compiled
        value = await state.enter(node.factory(**kwargs), node.in_thread)
    if node.enter_context or type(value) in _GENERATOR_CM_TYPES:
        value = await state.enter(value, node.in_thread)
    if node.use_cache:
        state.cache[node] = value
    return value
