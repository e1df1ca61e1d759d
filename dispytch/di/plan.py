"""Compiles a handler's signature into a resolution plan, once, when it is registered.

Everything that can be wrong with a signature is found here and raised as a
`HandlerRegistrationError` naming the function and the parameter. At run time the plan only
walks precomputed tuples: no signature inspection, no type adapters built per event.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import AsyncExitStack
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, TypeAdapter

from dispytch.di.markers import Dependency, TopicSegment
from dispytch.errors import DependencyCycleError, HandlerRegistrationError
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


class EventSource(Protocol):
    """What a plan needs from the message being handled, when its Event parameters ask for
    more than one body type."""

    def event_for(self, body_type: type[BaseModel] | None) -> Event[Any]: ...


class _OneEvent:
    """The source of a plan called with a single Event (see `HandlerPlan.start`)."""

    __slots__ = ("event",)

    def __init__(self, event: Event[Any]) -> None:
        self.event = event

    def event_for(self, body_type: type[BaseModel] | None) -> Event[Any]:
        return self.event


def _source(event: Event[Any] | None, source: EventSource | None) -> EventSource:
    if source is not None:
        return source
    assert event is not None
    return _OneEvent(event)


class SegmentUse(typing.NamedTuple):
    segment: str
    validate: Callable[[str], Any]


class _DependencyNode:
    __slots__ = ("call_kind", "enter_context", "factory", "name", "params", "simple", "use_cache")

    def __init__(
        self,
        factory: Callable[..., Any],
        call_kind: int,
        params: tuple[ParamSource, ...],
        use_cache: bool,
        enter_context: bool,
        name: str,
    ) -> None:
        self.factory = factory
        self.call_kind = call_kind
        self.params = params
        self.use_cache = use_cache
        self.enter_context = enter_context
        self.name = name
        wrapped = getattr(factory, "__wrapped__", None)
        self.simple = (
            call_kind == _CALL_SYNC
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

    async def enter(self, manager: Any) -> Any:
        if self.stack is None:
            self.stack = AsyncExitStack()
        if hasattr(manager, "__aenter__"):
            return await self.stack.enter_async_context(manager)
        return self.stack.enter_context(manager)


class HandlerPlan:
    """How to call one handler: where each argument comes from.

    `start()` resolves the arguments and returns the handler's awaitable; awaiting it runs the
    handler, then the dependencies' teardowns (which see its error).
    """

    __slots__ = (
        "_by_position",
        "_flat",
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

    def convert_segments(self, raw: Mapping[str, str]) -> tuple[Any, ...]:
        """Convert the topic's segment texts for this handler (raises pydantic ValidationError)."""
        return tuple(use.validate(raw[use.segment]) for use in self.segment_uses)

    def start(
        self,
        event: Event[Any] | None,
        segments: tuple[Any, ...] = (),
        source: EventSource | None = None,
    ) -> Awaitable[None]:
        """The handler's call, with `event` for all its Event parameters (`single_event`
        plans), or else with the Event for each body type taken from `source`."""
        if not self._flat:
            return self._call_with_state(_source(event, source), segments)
        # The common shape, without the per-event state: plain functions, nothing to cache or
        # tear down. Two copies of one loop: arguments by position (cheaper) or by name.
        if self._by_position:
            args: list[Any] = []
            for _, kind, payload in self.params:
                if kind == _FROM_EVENT:
                    args.append(event if source is None else source.event_for(payload))
                elif kind == _FROM_SEGMENT:
                    args.append(segments[payload])
                else:
                    value = payload.factory()
                    if type(value) in _GENERATOR_CM_TYPES:
                        return self._leave_flat_path(event, source, segments, payload, value)
                    args.append(value)
            return self.func(*args)  # type: ignore[no-any-return]
        kwargs: dict[str, Any] = {}
        for name, kind, payload in self.params:
            if kind == _FROM_EVENT:
                kwargs[name] = event if source is None else source.event_for(payload)
            elif kind == _FROM_SEGMENT:
                kwargs[name] = segments[payload]
            else:
                value = payload.factory()
                if type(value) in _GENERATOR_CM_TYPES:
                    return self._leave_flat_path(event, source, segments, payload, value)
                kwargs[name] = value
        return self.func(**kwargs)  # type: ignore[no-any-return]

    def _leave_flat_path(
        self,
        event: Event[Any] | None,
        source: EventSource | None,
        segments: tuple[Any, ...],
        node: _DependencyNode,
        value: Any,
    ) -> Awaitable[None]:
        """A plain function returned a @contextmanager object: it needs entering, so this plan
        takes the general path from now on; this event keeps the object already made (calling
        the function again would repeat its effects)."""
        node.simple = False
        self._flat = False
        return self._call_with_state(_source(event, source), segments, (node, value))

    async def _call_with_state(
        self,
        source: EventSource,
        segments: tuple[Any, ...],
        made: tuple[_DependencyNode, Any] | None = None,
    ) -> None:
        state = _CallState(source, segments)
        try:
            if made is not None:  # a dependency value made already, to be entered and reused
                node, manager = made
                state.cache[node] = await state.enter(manager)
            await self.func(**(await _resolve(self.params, state)))
        except BaseException as exc:
            if state.stack is not None:
                await state.stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if state.stack is not None:
            await state.stack.aclose()


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
        value = node.factory(**kwargs)
    elif kind == _CALL_ASYNC:
        value = await node.factory(**kwargs)
    else:  # generators were wrapped into context manager factories when compiled
        value = await state.enter(node.factory(**kwargs))
    if node.enter_context or type(value) in _GENERATOR_CM_TYPES:
        value = await state.enter(value)
    if node.use_cache:
        state.cache[node] = value
    return value


class _Compiler:
    """Walks a handler and its dependencies once, building nodes and checking everything."""

    def __init__(
        self,
        handler_name: str,
        segment_names: Collection[str],
        localns: Mapping[str, Any] | None,
    ) -> None:
        self.handler_name = handler_name
        self.localns = localns
        self.segment_names = frozenset(segment_names)
        self.cached_nodes: dict[Callable[..., Any], _DependencyNode] = {}
        self.visiting: list[Callable[..., Any]] = []
        self.body_types: dict[type[BaseModel] | None, None] = {}
        self.segment_uses: list[SegmentUse] = []
        self.segment_index: dict[tuple[str, Any], int] = {}

    def compile_params(self, func: Callable[..., Any], where: str) -> tuple[ParamSource, ...]:
        signature, hints = _signature_and_hints(func, where, self.localns)
        sources: list[ParamSource] = []
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            source = self.param_source(param, hints.get(param.name, param.annotation), where)
            if source is None:
                continue
            if param.kind is param.POSITIONAL_ONLY:
                raise HandlerRegistrationError(
                    f"{where}: parameter {param.name!r} is positional-only; "
                    "Dispytch passes arguments by name"
                )
            sources.append(source)
        return tuple(sources)

    def param_source(
        self, param: inspect.Parameter, annotation: Any, where: str
    ) -> ParamSource | None:
        base, metadata = _split_annotated(annotation)
        markers = [
            m for m in (*metadata, param.default) if isinstance(m, (Dependency, TopicSegment))
        ]
        if len(markers) > 1:
            raise HandlerRegistrationError(
                f"{where}: parameter {param.name!r} has more than one marker"
            )
        marker = markers[0] if markers else None
        if isinstance(marker, Dependency):
            return (param.name, _FROM_DEPENDENCY, self.dependency_node(marker, base, param, where))
        if isinstance(marker, TopicSegment):
            return self.segment_source(param, marker.alias or param.name, base, metadata, where)
        if base is Event or typing.get_origin(base) is Event:
            return (param.name, _FROM_EVENT, self.body_type(base, param.name, where))
        if param.name in self.segment_names:
            return self.segment_source(param, param.name, base, metadata, where)
        if param.default is not inspect.Parameter.empty:
            return None  # a plain default value: left to Python
        raise HandlerRegistrationError(
            f"{where}: cannot resolve parameter {param.name!r}: annotate it as Event[...], "
            "give it a Dependency(...) or TopicSegment(), name a {segment} of the topic, "
            "or give it a default value"
        )

    def segment_source(
        self,
        param: inspect.Parameter,
        segment: str,
        base: Any,
        metadata: tuple[Any, ...],
        where: str,
    ) -> ParamSource:
        if segment not in self.segment_names:
            known = ", ".join(sorted(self.segment_names)) or "none"
            raise HandlerRegistrationError(
                f"{where}: parameter {param.name!r} is bound to topic segment {{{segment}}}, "
                f"which the handler's topic pattern does not have (its segments: {known})"
            )
        constraints = tuple(m for m in metadata if not isinstance(m, TopicSegment))
        target = str if base is inspect.Parameter.empty else base
        key = (segment, (target, constraints))
        try:
            index = self.segment_index[key]
        except KeyError:
            index = len(self.segment_uses)
            self.segment_index[key] = index
            self.segment_uses.append(
                SegmentUse(segment, _segment_validator(target, constraints, where))
            )
        except TypeError:  # unhashable constraint objects: no sharing
            index = len(self.segment_uses)
            self.segment_uses.append(
                SegmentUse(segment, _segment_validator(target, constraints, where))
            )
        return (param.name, _FROM_SEGMENT, index)

    def body_type(self, annotation: Any, param_name: str, where: str) -> type[BaseModel] | None:
        args = typing.get_args(annotation)
        body = args[0] if args else None
        if body is None or body is Any or body is dict or typing.get_origin(body) is dict:
            self.body_types[None] = None
            return None
        if isinstance(body, type) and issubclass(body, BaseModel):
            self.body_types[body] = None
            return body
        raise HandlerRegistrationError(
            f"{where}: parameter {param_name!r}: the body type of Event[...] must be a pydantic "
            f"model (or dict for the raw body), got {body!r}"
        )

    def dependency_node(
        self, marker: Dependency, base: Any, param: inspect.Parameter, where: str
    ) -> _DependencyNode:
        func = marker.func
        if func is None:
            if base is inspect.Parameter.empty or not callable(base):
                raise HandlerRegistrationError(
                    f"{where}: parameter {param.name!r} has Dependency() without a function "
                    "and no callable annotation to call instead"
                )
            func = base
        if not callable(func):
            raise HandlerRegistrationError(
                f"{where}: parameter {param.name!r}: Dependency({func!r}) is not callable"
            )
        if marker.use_cache and func in self.cached_nodes:
            node = self.cached_nodes[func]
            if node.enter_context != marker.enter_context:
                raise HandlerRegistrationError(
                    f"{where}: {_name(func)} is used with different enter_context settings"
                )
            return node
        if func in self.visiting:
            chain = " -> ".join(
                _name(f) for f in (*self.visiting[self.visiting.index(func) :], func)
            )
            raise DependencyCycleError(f"handler {self.handler_name!r}: dependency cycle {chain}")
        self.visiting.append(func)
        try:
            dep_where = f"handler {self.handler_name!r}, dependency {_name(func)}"
            params = self.compile_params(func, dep_where)
        finally:
            self.visiting.pop()
        factory, call_kind = _factory(func)
        node = _DependencyNode(
            factory, call_kind, params, marker.use_cache, marker.enter_context, _name(func)
        )
        if marker.use_cache:
            self.cached_nodes[func] = node
        return node


def compile_handler(
    func: Callable[..., Any],
    segment_names: Collection[str],
    name: str | None = None,
    localns: Mapping[str, Any] | None = None,
) -> HandlerPlan:
    """Build the plan for `func`, a handler whose topic pattern has `segment_names`.

    `localns`: the namespace the handler was defined in, for annotations that name local
    classes under `from __future__ import annotations`."""
    handler_name = name or _name(func)
    if not inspect.iscoroutinefunction(func) and not inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - async callables objects count too
    ):
        raise HandlerRegistrationError(
            f"handler {handler_name!r} must be an async function (async def)"
        )
    compiler = _Compiler(handler_name, segment_names, localns)
    params = compiler.compile_params(func, f"handler {handler_name!r}")
    return HandlerPlan(
        func,
        handler_name,
        params,
        tuple(compiler.body_types),
        tuple(compiler.segment_uses),
        _takes_by_position(func, params),
    )


def _takes_by_position(func: Callable[..., Any], params: tuple[ParamSource, ...]) -> bool:
    """Can `func` be given `params` by position with the same effect as by name? Only for a
    plain function whose own first parameters have those names (not for wrappers, which may
    read their **kwargs, nor for callables whose signature is not their code's)."""
    if not inspect.isfunction(func):
        return False
    code = func.__code__
    names = tuple(name for name, _, _ in params)
    return (
        code.co_posonlyargcount == 0
        and code.co_argcount >= len(names)
        and code.co_varnames[: len(names)] == names
    )


def _signature_and_hints(
    func: Callable[..., Any], where: str, localns: Mapping[str, Any] | None
) -> tuple[inspect.Signature, dict[str, Any]]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise HandlerRegistrationError(f"{where}: cannot read its signature: {exc}") from exc
    target = func.__init__ if isinstance(func, type) else func  # type: ignore[misc]
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(target, "__call__", target)  # noqa: B004
    try:
        try:
            hints = typing.get_type_hints(target, include_extras=True)
        except NameError:
            if not localns:
                raise
            hints = typing.get_type_hints(target, localns=dict(localns), include_extras=True)
    except Exception as exc:
        raise HandlerRegistrationError(
            f"{where}: cannot evaluate its annotations ({type(exc).__name__}: {exc}); "
            "types named in annotations must be importable from the function's module"
        ) from exc
    return signature, hints


def _split_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        return base, tuple(metadata)
    return annotation, ()


def _segment_validator(
    target: Any, constraints: tuple[Any, ...], where: str
) -> Callable[[str], Any]:
    annotation: Any = target
    if constraints:
        annotation = Annotated.__class_getitem__((target, *constraints))  # type: ignore[attr-defined]
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    except Exception as exc:
        raise HandlerRegistrationError(
            f"{where}: topic segment type {annotation!r} is not supported: {exc}"
        ) from exc
    if target is str and not constraints:
        return str
    return adapter.validate_strings


def _factory(func: Callable[..., Any]) -> tuple[Callable[..., Any], int]:
    if inspect.isasyncgenfunction(func):
        return contextlib.asynccontextmanager(func), _CALL_ASYNC_GENERATOR
    if inspect.isgeneratorfunction(func):
        return contextlib.contextmanager(func), _CALL_SYNC_GENERATOR
    if inspect.iscoroutinefunction(func) or (
        not isinstance(func, type) and inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004
    ):
        return func, _CALL_ASYNC
    return func, _CALL_SYNC


def _name(func: Any) -> str:
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or func)
