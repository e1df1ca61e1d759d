"""Finds the handlers for a (topic, event type), with the topic's segments converted."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dispytch.errors import HandlerRegistrationError
from dispytch.routing.group import ANY_EVENT, HandlerSpec, segment_names
from dispytch.routing.patterns import Subscription

#: converted segment values, or the error that converting them raised
Segments = tuple[Any, ...] | Exception
Match = tuple[HandlerSpec, Segments]

_CACHE_LIMIT = 4096


@dataclass(slots=True)
class _Route:
    spec: HandlerSpec
    subscription: Subscription
    #: (segment name, position in the topic split on the delimiter)
    positions: tuple[tuple[str, int], ...]
    #: the spec as the listener runs it (see `Router.bind`)
    bound: HandlerSpec


class Router:
    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter
        self._literal: dict[str, list[_Route]] = {}
        self._patterns: list[_Route] = []
        self._cache: dict[str, dict[str, tuple[Match, ...]]] = {}
        self._cached = 0

    def check(self, spec: HandlerSpec) -> None:
        """Raise `HandlerRegistrationError` if `spec` cannot be added; add nothing."""
        self._route(spec)

    def add(self, spec: HandlerSpec) -> None:
        route = self._route(spec)
        if route.subscription.is_literal:
            self._literal.setdefault(spec.topic, []).append(route)
        else:
            self._patterns.append(route)
        self._cache.clear()
        self._cached = 0

    def _route(self, spec: HandlerSpec) -> _Route:
        subscription = Subscription.parse(spec.topic, self.delimiter)
        names = segment_names(spec.topic)
        positions = []
        for name in names:
            placeholder = "{" + name + "}"
            try:
                index = spec.topic.split(self.delimiter).index(placeholder)
            except ValueError:
                raise HandlerRegistrationError(
                    f"handler {spec.name!r}: segment {placeholder} of topic {spec.topic!r} must "
                    f"stand alone between delimiters {self.delimiter!r}"
                ) from None
            positions.append((name, index))
        return _Route(spec, subscription, tuple(positions), spec)

    @property
    def subscriptions(self) -> list[Subscription]:
        seen: dict[str, Subscription] = {}
        for route in self._routes():
            seen.setdefault(route.subscription.pattern, route.subscription)
        return list(seen.values())

    @property
    def specs(self) -> list[HandlerSpec]:
        return [route.spec for route in self._routes()]

    def bind(self, make: Callable[[HandlerSpec], HandlerSpec]) -> None:
        """Route to `make(spec)` for every spec from now on (all or nothing: if `make` raises
        for one, nothing changes)."""
        routes = list(self._routes())
        bound = [make(route.spec) for route in routes]
        for route, spec in zip(routes, bound, strict=True):
            route.bound = spec
        self._cache.clear()
        self._cached = 0

    def match(self, topic: str, event_type: str) -> tuple[Match, ...]:
        by_type = self._cache.get(topic)
        if by_type is not None:
            found = by_type.get(event_type)
            if found is not None:
                return found
        found = self._find(topic, event_type)
        if self._cached >= _CACHE_LIMIT:  # topics and types from the wire: keep the cache bounded
            self._cache.clear()
            self._cached = 0
        self._cache.setdefault(topic, {})[event_type] = found
        self._cached += 1
        return found

    def _routes(self) -> Iterable[_Route]:
        for routes in self._literal.values():
            yield from routes
        yield from self._patterns

    def body_types(self, topic: str) -> dict[str, type[BaseModel] | None] | None:
        """For each event type handled on `topic`, the one body type its handlers want (None:
        the raw body); None when there is no such answer: a handler on the topic takes any
        event type ("*"), or an event type's handlers want different or several body types."""
        found: dict[str, type[BaseModel] | None] = {}
        for route in self._candidates(topic):
            plan = route.bound.plan
            if route.spec.event == ANY_EVENT or not plan.single_event:
                return None
            if found.setdefault(route.spec.event, plan.body_type) is not plan.body_type:
                return None
        return found

    def _candidates(self, topic: str) -> list[_Route]:
        """The routes whose topic matches `topic`."""
        candidates = list(self._literal.get(topic, ()))
        for route in self._patterns:
            if route.subscription.matches(topic):
                candidates.append(route)
        return candidates

    def _find(self, topic: str, event_type: str) -> tuple[Match, ...]:
        parts: list[str] | None = None
        matches: list[Match] = []
        for route in self._candidates(topic):
            if route.spec.event != event_type and route.spec.event != ANY_EVENT:
                continue
            spec = route.bound
            if not route.positions:
                matches.append((spec, ()))
                continue
            if parts is None:
                parts = topic.split(self.delimiter)
            raw = {name: parts[index] for name, index in route.positions}
            try:
                matches.append((spec, spec.plan.convert_segments(raw)))
            except Exception as exc:  # pydantic ValidationError, or a custom validator's error
                matches.append((spec, exc))
        return tuple(matches)
