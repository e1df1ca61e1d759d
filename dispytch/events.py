"""Events on both sides: `EventBase` is what services emit, `Event[T]` is what handlers receive."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field

BodyT = TypeVar("BodyT")


def _new_event_id() -> str:
    return str(uuid.uuid4())


class EventBase(BaseModel):
    """Base class of emitted events: a pydantic model whose fields are the event's body.

    - `__topic__`: where the event goes; may hold `{field}` placeholders filled from the
      event's own fields when it is emitted (`"orders.{region}"`).
    - `__event_type__`: the type name handlers subscribe to (`event="order_placed"`).
    - `__backend_config__`: backend options (`KafkaEventConfig`, `RabbitMQEventConfig`, ...),
      as a class attribute for every event of the class, or set on one instance.
    - `__key__`: name of a field whose value becomes the message key (ordering key), or None.
    - `__codec__`: the codec (wire format) for events of the class, or None for the emitter's
      (see docs/codecs.md); one with a `bind(event_class)` method is called with each class
      that uses it, once the class is defined (see docs/schemas.md).
    - `id`: the event id, a new uuid4 string unless given.
    """

    __topic__: ClassVar[str]
    __event_type__: ClassVar[str]
    __key__: ClassVar[str | None] = None
    __backend_config__ = None
    __codec__: ClassVar[Any] = None

    id: str = Field(default_factory=_new_event_id, exclude=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # a codec with `bind(event_class)` (a schema format) checks the class once it is
        # complete, so that a field it cannot carry fails where the class is defined
        super().__pydantic_init_subclass__(**kwargs)
        bind = getattr(cls.__codec__, "bind", None)
        if bind is not None and cls.__pydantic_complete__:  # else at its first emit
            bind(cls)


class Event(Generic[BodyT]):
    """A received event, as handlers get it: `Event[UserCreated]` gives a validated body.

    `body` is an instance of the annotated model (a plain `dict` for a bare `Event`).
    `attempt` counts deliveries of this event to the handler, starting at 1. `metadata` holds
    what the broker tells (partition and offset on Kafka, redelivered flag on RabbitMQ, ...).
    """

    __slots__ = (
        "attempt",
        "body",
        "headers",
        "id",
        "key",
        "metadata",
        "timestamp",
        "topic",
        "type",
    )

    id: str
    type: str
    topic: str
    body: BodyT
    timestamp: int | None
    headers: Mapping[str, str]
    key: bytes | None
    attempt: int
    metadata: Mapping[str, Any]

    def __init__(
        self,
        *,
        id: str,
        type: str,
        topic: str,
        body: BodyT,
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
        key: bytes | None = None,
        attempt: int = 1,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.type = type
        self.topic = topic
        self.body = body
        self.timestamp = timestamp
        self.headers = _EMPTY if headers is None else headers
        self.key = key
        self.attempt = attempt
        self.metadata = _EMPTY if metadata is None else metadata

    def __repr__(self) -> str:
        return (
            f"Event(id={self.id!r}, type={self.type!r}, topic={self.topic!r}, "
            f"body={self.body!r}, attempt={self.attempt})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


_EMPTY: Mapping[str, Any] = {}
