"""Handler annotations whose typing objects differ between the Python versions Dispytch supports.

What `typing` builds for the same annotation is not the same object on 3.10 to 3.13: `Annotated`
is a class up to 3.12 and a special form on 3.13; 3.10's `get_type_hints` wraps a parameter that
defaults to None in `Optional` by itself; `X | None` is a `types.UnionType`, `Optional[X]` a
`typing.Union`; string annotations are evaluated later; `type` aliases (3.12+, and
`typing_extensions.TypeAliasType` everywhere) hide their value behind `__value__`. Every shape
below must be handled the same on every version: scripts/test-pythons runs this file on each.
"""

import sys
from collections.abc import Callable
from typing import Annotated, Any, Optional

import annotated_types
import pytest
import typing_extensions
from pydantic import BaseModel, Field

from dispytch import Dependency, Event, HandlerGroup, TopicSegment
from tests.core.helpers import envelope, run_group


class Body(BaseModel):
    n: int


class Service:
    pass


SERVICE = Service()


def get_service() -> Service:
    return SERVICE


UID = TopicSegment("uid")


class TypeStatement(str):
    """The value of a 3.12 `type Alias = ...` statement, run by the test (a syntax error on
    older versions, so it cannot be written in this module)."""

    def alias(self) -> Any:
        scope = dict(globals())
        exec(f"type Alias = {self}", scope)
        return scope["Alias"]


def resolved(annotation: Any) -> Any:
    return annotation.alias() if isinstance(annotation, TypeStatement) else annotation


needs_type_statement = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="the `type` statement is Python 3.12+"
)

NO_DEFAULT = object()


def handler_taking(
    name: str, annotation: Any, seen: list[Any], default: Any = NO_DEFAULT
) -> Callable[..., Any]:
    """An async handler with the one parameter `name: annotation` (`= default`), recording it.

    Built from source so that a string annotation is evaluated in this module's namespace."""
    parameter = name if default is NO_DEFAULT else f"{name}=default"
    scope = globals() | {"default": default, "record": seen.append}
    exec(f"async def handler({parameter}):\n    record({name})\n", scope)
    handler: Callable[..., Any] = scope["handler"]
    handler.__annotations__ = {name: annotation}
    return handler


POSITIVE_SEGMENTS = [
    pytest.param(Annotated[int, UID, Field(gt=0)], NO_DEFAULT, id="marker-then-field"),
    pytest.param(Annotated[int, Field(gt=0), UID], NO_DEFAULT, id="field-then-marker"),
    pytest.param(Annotated[int, UID, annotated_types.Gt(0)], NO_DEFAULT, id="annotated-types"),
    pytest.param(Annotated[Annotated[int, Field(gt=0)], UID], NO_DEFAULT, id="nested"),
    pytest.param(
        typing_extensions.Annotated[int, UID, Field(gt=0)],
        NO_DEFAULT,
        id="typing_extensions",
    ),
    pytest.param(
        Optional[Annotated[int, UID, Field(gt=0)]],  # noqa: UP045 - the shape tested
        None,
        id="Optional",
    ),
    pytest.param(Annotated[int, UID, Field(gt=0)] | None, None, id="pep604-union"),
    pytest.param(Annotated[Optional[int], UID, Field(gt=0)], None, id="inner-optional"),  # noqa: UP045
    # 3.10's get_type_hints turns this into Optional[Annotated[...]]; 3.11+ leaves it alone
    pytest.param(Annotated[int, UID, Field(gt=0)], None, id="default-None"),
    pytest.param("Annotated[int, UID, Field(gt=0)]", NO_DEFAULT, id="string"),
    pytest.param(
        typing_extensions.TypeAliasType("PositiveId", Annotated[int, UID, Field(gt=0)]),
        NO_DEFAULT,
        id="TypeAliasType",
    ),
    pytest.param(
        Annotated[
            typing_extensions.TypeAliasType("PositiveInt", Annotated[int, Field(gt=0)]),
            UID,
        ],
        NO_DEFAULT,
        id="TypeAliasType-inside",
    ),
    pytest.param(
        TypeStatement("Annotated[int, UID, Field(gt=0)]"),
        NO_DEFAULT,
        id="type-statement",
        marks=needs_type_statement,
    ),
]


async def deliver_to_segment_handler(handler: Callable[..., Any], seen: list[Any]) -> None:
    """Users 0, -3 and abc fail the handler's `uid > 0`; only user 5 reaches it."""
    group = HandlerGroup()
    group.handler(topic="users.{uid}", event="e", retries=3, retry_interval=0)(handler)
    bad = ["users.0", "users.-3", "users.abc"]
    broker = await run_group(
        group,
        [(topic, envelope("e", {})) for topic in [*bad, "users.5"]],
        topic_delimiter=".",
    )
    assert seen == [5]
    assert type(seen[0]) is int
    assert [broker.backlog(broker.dead_letter_topic(topic)) for topic in bad] == [1, 1, 1]


@pytest.mark.parametrize(("annotation", "default"), POSITIVE_SEGMENTS)
async def test_constrained_topic_segment(annotation: Any, default: Any) -> None:
    annotation = resolved(annotation)
    seen: list[Any] = []
    # named "user_id": the segment is found through the marker, not through the name
    await deliver_to_segment_handler(handler_taking("user_id", annotation, seen, default), seen)


@pytest.mark.parametrize("default", [NO_DEFAULT, None], ids=["no-default", "default-None"])
async def test_constrained_segment_named_by_the_parameter(default: Any) -> None:
    seen: list[Any] = []
    annotation = Annotated[int, Field(gt=0)]
    await deliver_to_segment_handler(handler_taking("uid", annotation, seen, default), seen)


DEPENDENCIES = [
    pytest.param(Annotated[Service, Dependency(get_service)], NO_DEFAULT, id="Annotated"),
    pytest.param(
        typing_extensions.Annotated[Service, Dependency(get_service)],
        NO_DEFAULT,
        id="typing_extensions",
    ),
    pytest.param(Annotated[Service, Dependency()], NO_DEFAULT, id="class-itself"),
    pytest.param(
        Optional[Annotated[Service, Dependency(get_service)]],  # noqa: UP045 - the shape tested
        None,
        id="Optional",
    ),
    pytest.param(Annotated[Service, Dependency(get_service)] | None, None, id="pep604-union"),
    pytest.param(Annotated[Service, Dependency(get_service)], None, id="default-None"),
    pytest.param("Annotated[Service, Dependency(get_service)]", NO_DEFAULT, id="string"),
    pytest.param(Service, Dependency(get_service), id="default-marker"),
    pytest.param("Service", Dependency(get_service), id="default-marker-string"),
    pytest.param(
        typing_extensions.TypeAliasType("ServiceDep", Annotated[Service, Dependency(get_service)]),
        NO_DEFAULT,
        id="TypeAliasType",
    ),
    pytest.param(
        TypeStatement("Annotated[Service, Dependency(get_service)]"),
        NO_DEFAULT,
        id="type-statement",
        marks=needs_type_statement,
    ),
]


@pytest.mark.parametrize(("annotation", "default"), DEPENDENCIES)
async def test_dependency_annotation(annotation: Any, default: Any) -> None:
    annotation = resolved(annotation)
    seen: list[Any] = []
    group = HandlerGroup()
    group.handler(topic="t", event="e")(handler_taking("service", annotation, seen, default))
    await run_group(group, [("t", envelope("e", {}))])
    assert len(seen) == 1
    assert isinstance(seen[0], Service)


EVENTS = [
    pytest.param(Event[Body], id="Event"),
    pytest.param("Event[Body]", id="string"),
    pytest.param(Event["Body"], id="string-argument"),
    pytest.param(typing_extensions.TypeAliasType("BodyEvent", Event[Body]), id="TypeAliasType"),
    pytest.param(TypeStatement("Event[Body]"), id="type-statement", marks=needs_type_statement),
]


@pytest.mark.parametrize("annotation", EVENTS)
async def test_event_annotation(annotation: Any) -> None:
    annotation = resolved(annotation)
    seen: list[Any] = []
    group = HandlerGroup()
    group.handler(topic="t", event="e")(handler_taking("event", annotation, seen))
    await run_group(group, [("t", envelope("e", {"n": 7}))])
    [event] = seen
    assert isinstance(event, Event)
    assert event.body == Body(n=7)
