"""The JSON envelope of an event in one pass: the named fast path of `JSONCodec`.

The reference encoding (`reference_envelope_json`, what dispytch 0.10 wrote) is a dict of the
body's `model_dump(mode="json")` inside the envelope dict, serialized with `to_json`.
`envelope_json` writes the same bytes with the event class's own serializer and no dicts,
for every class where that is byte for byte the same. It is not for a class with a float
field, unless every model holding one sets `ser_json_inf_nan="constants"`: the reference writes
a float field's `inf` as `Infinity` whatever the model's `ser_json_inf_nan` (`model_dump` keeps
the float, `to_json` writes a constant), while the model's serializer follows that setting
(`null` by default). Untyped (`Any`) values follow the event class's setting in both. A class
whose serializer may differ (a float field, a `complex` one, `model_dump` overridden, a schema
not built) keeps the reference encoding; the answer is computed once per class.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

from dispytch.envelope import build_envelope
from dispytch.serialization.codec import NO_HEADERS, Codec, Encoded, JSONCodec

if TYPE_CHECKING:
    from dispytch.events import EventBase


def encode_event(
    codec: Codec, event: EventBase, event_type: str, timestamp_ms: int
) -> Encoded | Awaitable[Encoded]:
    """`codec`'s encoding of `event`. The default `JSONCodec` (not a subclass) writes the
    envelope in one pass (`envelope_json`); other codecs get the envelope as a dict, whose
    body is the event's JSON dump, or None for a codec that sets `body_as_json = False` (a
    schema format, which writes the event's own values)."""
    if type(codec) is JSONCodec:
        return envelope_json(event, event_type, timestamp_ms), NO_HEADERS
    body = event.model_dump(mode="json") if getattr(codec, "body_as_json", True) else None
    return codec.encode(build_envelope(event.id, event_type, body, timestamp_ms), event)


def envelope_json(event: EventBase, event_type: str, timestamp_ms: int) -> bytes:
    """The bytes of `{"id", "type", "body", "timestamp"}` for `event`, identical to
    `reference_envelope_json`."""
    event_class = type(event)
    one_pass = _one_pass_classes.get(event_class)
    if one_pass is None:
        one_pass = _serializes_as_reference(event_class)
        if event_class.__pydantic_complete__:  # a class not built yet is asked again later
            _one_pass_classes[event_class] = one_pass
    if not one_pass:
        return reference_envelope_json(event, event_type, timestamp_ms)
    return b'{"id":%b,"type":%b,"body":%b,"timestamp":%d}' % (
        to_json(event.id),
        to_json(event_type),
        event_class.__pydantic_serializer__.to_json(event),
        timestamp_ms,
    )


def reference_envelope_json(event: EventBase, event_type: str, timestamp_ms: int) -> bytes:
    """The envelope as dispytch 0.10 made it: the body's JSON dump in a dict, serialized."""
    return to_json(
        build_envelope(event.id, event_type, event.model_dump(mode="json"), timestamp_ms)
    )


#: per event class: whether its own serializer writes the reference's bytes
_one_pass_classes: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()

#: schemas with a config (model, dataclass, typed dict): it sets how their floats are written
_TYPES_WITH_CONFIG = frozenset({"model", "dataclass", "typed-dict"})
#: schemas whose JSON depends on `ser_json_inf_nan`
_INF_NAN_TYPES = frozenset({"float", "complex"})


def _serializes_as_reference(event_class: type[EventBase]) -> bool:
    from pydantic import BaseModel

    if not event_class.__pydantic_complete__ or event_class.model_dump is not BaseModel.model_dump:
        return False
    try:
        return _floats_written_as_constants(event_class.__pydantic_core_schema__, None)
    except RecursionError:  # a schema too deep to walk keeps the reference encoding
        return False


def _floats_written_as_constants(node: Any, inf_nan_mode: str | None) -> bool:
    """Whether every float in a core schema is under a config that writes it as a constant
    (`inf_nan_mode`: the innermost config's, None outside any)."""
    if isinstance(node, list):
        return all(_floats_written_as_constants(each, inf_nan_mode) for each in node)
    if not isinstance(node, dict):
        return True
    kind = node.get("type")
    if isinstance(kind, str):
        if kind in _INF_NAN_TYPES and inf_nan_mode != "constants":
            return False
        config = node.get("config")
        if kind in _TYPES_WITH_CONFIG:
            inf_nan_mode = (
                config.get("ser_json_inf_nan", "null") if isinstance(config, dict) else None
            )
    return all(_floats_written_as_constants(value, inf_nan_mode) for value in node.values())
