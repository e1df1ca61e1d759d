"""A listener's own copy of a handler: its dependency overrides compiled into the plan, and
the handler-call middleware (the listener's, the group's, the handler's) composed around it.

Done once per handler when the listener starts (and when its overrides change), never per
message. Without middleware the attempt is the plan's own `start`: the no-cost path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import Any

from dispytch.di.compile import Overrides
from dispytch.events import Event
from dispytch.middleware.context import HandlerCall, HandlerMiddleware, compose
from dispytch.routing.group import HandlerSpec


def bind(
    spec: HandlerSpec, listener_middleware: Sequence[HandlerMiddleware], overrides: Overrides
) -> HandlerSpec:
    plan = spec.plan
    if overrides and spec.recompile is not None:
        plan = spec.recompile(overrides)
    bound = dataclasses.replace(spec, plan=plan)
    middlewares = (*listener_middleware, *spec.group_middleware, *spec.middleware)
    if middlewares:
        attempt: Any = partial(_attempt_through, compose(middlewares, _call_plan), bound)
    else:
        attempt = plan.start  # the plain call: nothing between the retry layer and the handler
    object.__setattr__(bound, "attempt", attempt)
    return bound


def _attempt_through(
    chain: Any, spec: HandlerSpec, run: Any, segments: tuple[Any, ...], attempt: int
) -> Awaitable[Any]:
    run.attempt = attempt
    event = run if type(run) is Event else run.event_for(spec.plan.body_type)
    call = HandlerCall(event, spec, attempt, run, segments, spec.plan.start)
    return chain(call)  # type: ignore[no-any-return]


def _call_plan(call: HandlerCall) -> Awaitable[Any]:
    """The end of the handler-call chain: the handler itself, once per attempt."""
    if call._called:
        raise RuntimeError(f"call_next() was called twice for handler {call.handler.name!r}")
    call._called = True
    return call._start(call._run, call._segments, call.attempt)
