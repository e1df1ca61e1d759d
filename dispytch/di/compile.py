"""Compiles a handler's signature into a resolution plan, once, when it is registered.

Everything that can be wrong with a signature is found here and raised as a
`HandlerRegistrationError` naming the function and the parameter.
"""

from __future__ import annotations

import contextlib
import inspect
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any

import typing_extensions
from pydantic import BaseModel, TypeAdapter

from dispytch.di.markers import Dependency, TopicSegment
from dispytch.di.plan import (
    _CALL_ASYNC,
    _CALL_ASYNC_GENERATOR,
    _CALL_SYNC,
    _CALL_SYNC_GENERATOR,
    _FROM_DEPENDENCY,
    _FROM_EVENT,
    _FROM_SEGMENT,
    HandlerPlan,
    ParamSource,
    SegmentUse,
    _DependencyNode,
)
from dispytch.errors import DependencyCycleError, HandlerRegistrationError
from dispytch.events import Event

#: what a handler's dependencies are replaced with (`EventListener.dependency_overrides`)
Overrides = Mapping[Callable[..., Any], Callable[..., Any]]
_NO_OVERRIDES: Overrides = {}

# `type X = ...` (3.12's typing.TypeAliasType) and typing_extensions' own TypeAliasType, which is
# a different class even on 3.12+
_TYPE_ALIAS_TYPES: tuple[Any, ...] = tuple(
    {
        cls
        for cls in (getattr(typing, "TypeAliasType", None), typing_extensions.TypeAliasType)
        if isinstance(cls, type)
    }
)


class _Compiler:
    """Walks a handler and its dependencies once, building nodes and checking everything."""

    def __init__(
        self,
        handler_name: str,
        segment_names: Collection[str],
        localns: Mapping[str, Any] | None,
        overrides: Overrides = _NO_OVERRIDES,
    ) -> None:
        self.handler_name = handler_name
        self.overrides = overrides
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
        if self.overrides:
            with contextlib.suppress(TypeError):  # an unhashable callable object: not overridden
                func = self.overrides.get(func, func)
        if not callable(func):
            raise HandlerRegistrationError(
                f"{where}: parameter {param.name!r}: Dependency({func!r}) is not callable"
            )
        if marker.use_cache and func in self.cached_nodes:
            node = self.cached_nodes[func]
            if (node.enter_context, node.in_thread) != (marker.enter_context, marker.run_in_thread):
                raise HandlerRegistrationError(
                    f"{where}: {_name(func)} is used with different enter_context or "
                    "run_in_thread settings"
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
        if marker.run_in_thread and call_kind not in (_CALL_SYNC, _CALL_SYNC_GENERATOR):
            raise HandlerRegistrationError(
                f"{where}: parameter {param.name!r}: run_in_thread is for sync functions and "
                f"generators; {_name(func)} is async and runs on the event loop already"
            )
        node = _DependencyNode(
            factory,
            call_kind,
            params,
            marker.use_cache,
            marker.enter_context,
            _name(func),
            marker.run_in_thread,
        )
        if marker.use_cache:
            self.cached_nodes[func] = node
        return node


def compile_handler(
    func: Callable[..., Any],
    segment_names: Collection[str],
    name: str | None = None,
    localns: Mapping[str, Any] | None = None,
    overrides: Overrides = _NO_OVERRIDES,
) -> HandlerPlan:
    """Build the plan for `func`, a handler whose topic pattern has `segment_names`.

    `localns`: the namespace the handler was defined in, for annotations that name local
    classes under `from __future__ import annotations`. `overrides`: dependency functions to
    call instead of others, wherever they are used (nested dependencies too)."""
    handler_name = name or _name(func)
    if not inspect.iscoroutinefunction(func) and not inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - async callables objects count too
    ):
        raise HandlerRegistrationError(
            f"handler {handler_name!r} must be an async function (async def)"
        )
    compiler = _Compiler(handler_name, segment_names, localns, overrides)
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
    """(the type, the `Annotated` metadata) of a parameter's annotation, seen through
    `Optional` and `type` aliases on both sides of `Annotated`."""
    annotation = _without_optional_or_alias(annotation)
    if typing.get_origin(annotation) is Annotated:
        base, *metadata = typing.get_args(annotation)
        inner_base, inner_metadata = _split_annotated(base)
        return inner_base, (*inner_metadata, *metadata)
    return annotation, ()


def _without_optional_or_alias(annotation: Any) -> Any:
    """`X` for `X | None` (`Optional[X]`) and for an alias of X: a parameter defaulting to None
    is still resolved by what X says (Python 3.10's get_type_hints even adds the Optional by
    itself), and `type X = Annotated[...]` (3.12) carries its markers behind the alias."""
    aliases_seen: list[Any] = []
    while True:
        if isinstance(annotation, _TYPE_ALIAS_TYPES) and annotation not in aliases_seen:
            aliases_seen.append(annotation)  # `type A = A` would loop forever
            annotation = annotation.__value__
            continue
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(others) == 1:
                annotation = others[0]
                continue
        return annotation


def _segment_validator(
    target: Any, constraints: tuple[Any, ...], where: str
) -> Callable[[str], Any]:
    annotation: Any = target
    if constraints:
        # subscription, not Annotated.__class_getitem__: Annotated is a class up to 3.12 but a
        # special form on 3.13, which has no __class_getitem__. X[a, b] is X[(a, b)] on all.
        params = (target, *constraints)
        annotation = Annotated[params]
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
