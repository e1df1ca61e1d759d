"""Wire formats. JSON is the default; MessagePack needs the `msgpack` extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispytch.serialization.base import CONTENT_TYPE_HEADER, Deserializer, Serializer
from dispytch.serialization.json import JSONDeserializer, JSONSerializer

if TYPE_CHECKING:
    from dispytch.serialization.msgpack import MessagePackDeserializer, MessagePackSerializer

__all__ = [
    "CONTENT_TYPE_HEADER",
    "Deserializer",
    "JSONDeserializer",
    "JSONSerializer",
    "MessagePackDeserializer",
    "MessagePackSerializer",
    "Serializer",
]


def __getattr__(name: str) -> Any:
    if name in ("MessagePackSerializer", "MessagePackDeserializer"):
        from dispytch.serialization import msgpack

        return getattr(msgpack, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
