"""One-pass decoding: a JSON envelope and its body validated together, straight from the bytes.

The general path reads a message in two passes: the codec turns the bytes into Python objects
(`from_json`, then `read_envelope` checks the envelope), then each handler's body type
validates the body. But once the handlers are registered, the listener knows every event type
handled on a topic and the body type each one wants, so a JSON message on that topic can be
read in one pass: a pydantic validator over the envelopes of those event types, discriminated
by `type` and compiled once per topic, checks the envelope and builds the body from the bytes,
without the intermediate dict and the second walk over it.

It only ever takes a shortcut to the result the general path would reach:
- it reads only what the default JSON codec would (no `content-type` header, or exactly
  `application/json`; never with a listener-wide `deserializer=`);
- it compiles a topic only when every handler on it names its event type (no `"*"`) and each
  event type has one body type; and it reads only the event types whose body type cannot tell
  JSON from the Python objects the general path validates (no strict mode anywhere in it, no
  `val_json_bytes`);
- its envelope is stricter than `read_envelope` (a timestamp must be an integer or null);
- whatever it does not accept (malformed bytes, an unknown type, a body that fails, a float
  timestamp, ...) goes the general path, which decides what becomes of the message: the same
  dead-letter reasons and log lines as without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, StrictInt, StrictStr, TypeAdapter
from pydantic_core import SchemaValidator
from typing_extensions import NotRequired, TypedDict  # pydantic reads these on Python < 3.12

from dispytch.backends.base import Delivery
from dispytch.envelope import Envelope
from dispytch.serialization.base import CONTENT_TYPE_HEADER
from dispytch.serialization.codec import JSON_CONTENT_TYPE

#: the type a body is validated as (None: the raw body, as decoded)
BodyType = type[BaseModel] | None
#: event type -> the body type its handlers want (None: the raw body)
BodyTypes = Mapping[str, BodyType]
#: what a topic reads as: its validator and body types, or None (the general path only)
_Compiled = tuple[SchemaValidator, BodyTypes] | None

#: topics whose validator is kept; topics come from the wire (wildcard subscriptions), so the
#: memo is emptied when full rather than growing with every topic ever received
_CACHE_LIMIT = 1024


class OnePassDecoder:
    """Reads JSON messages in one pass on the topics where that is safe (see the module)."""

    def __init__(self, body_types_for: Any) -> None:
        """`body_types_for(topic)`: the `BodyTypes` of the handlers on `topic`, or None when a
        handler on it takes any event type (or several body types for one)."""
        self._body_types_for = body_types_for
        self._compiled: dict[str, _Compiled] = {}
        #: validators by the body types they read (topics with the same handlers share one)
        self._by_types: dict[frozenset[tuple[str, Any]], SchemaValidator] = {}

    def reset(self) -> None:
        """Forget what was compiled (the handlers changed)."""
        self._compiled.clear()
        self._by_types.clear()

    def decode(self, delivery: Delivery) -> tuple[Envelope, BodyType] | None:
        """The envelope, its body validated already, and the body type that validated it;
        None when the general path must read the message (it is not one-pass material, or it
        is not valid)."""
        headers = delivery.headers
        if headers:
            content_type = headers.get(CONTENT_TYPE_HEADER)
            if content_type is not None and content_type != JSON_CONTENT_TYPE:
                return None
        compiled = self._compiled.get(delivery.topic, _MISSING)
        if compiled is _MISSING:
            compiled = self._compile(delivery.topic)
        if compiled is None:
            return None
        validator, body_types = compiled
        try:
            read = validator.validate_json(delivery.value)
        except Exception:  # ValidationError, or a custom validator's own error
            return None
        event_type = read["type"]
        body = read["body"]
        envelope = (read["id"], event_type, body, read.get("timestamp"))
        return envelope, body_types[event_type]

    def _compile(self, topic: str) -> _Compiled:
        if len(self._compiled) >= _CACHE_LIMIT:
            self._compiled.clear()
        handled = self._body_types_for(topic)
        # an event type whose body type validates JSON differently is left to the general path
        body_types = {
            event_type: body_type
            for event_type, body_type in (handled or {}).items()
            if _validates_json_as_python(body_type)
        }
        compiled: _Compiled = None
        if body_types:
            key = frozenset(body_types.items())
            if key not in self._by_types:
                self._by_types[key] = envelopes_validator(body_types)
            compiled = self._by_types[key], body_types
        self._compiled[topic] = compiled
        return compiled


_MISSING: Any = object()


def envelopes_validator(body_types: BodyTypes) -> SchemaValidator:
    """A validator of the envelopes of these event types (dicts), discriminated by "type"."""
    variants = [_envelope_type(event_type, body) for event_type, body in body_types.items()]
    envelope: Any = variants[0]
    if len(variants) > 1:
        envelope = Annotated[Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007
    return TypeAdapter(envelope).validator  # type: ignore[return-value]


def _envelope_type(event_type: str, body_type: type[BaseModel] | None) -> Any:
    return TypedDict(  # type: ignore[operator]
        "Envelope",
        {
            "id": StrictStr,
            "type": Literal[event_type],
            "body": Any if body_type is None else body_type,
            "timestamp": NotRequired[Union[StrictInt, None]],  # noqa: UP007
        },
    )


def _validates_json_as_python(body_type: type[BaseModel] | None) -> bool:
    """Whether validating JSON with `body_type` gives what validating the decoded JSON
    (Python objects) gives: not so in strict mode (a string is a datetime in JSON, not in
    Python), nor with `val_json_bytes` (base64 in JSON only)."""
    if body_type is None:
        return True
    return not _has_json_only_rules(body_type.__pydantic_core_schema__)


def _has_json_only_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("strict") is True or "val_json_bytes" in schema:
            return True
        return any(_has_json_only_rules(value) for value in schema.values())
    if isinstance(schema, (list, tuple)):
        return any(_has_json_only_rules(item) for item in schema)
    return False
