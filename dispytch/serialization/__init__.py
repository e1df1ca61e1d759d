"""Wire formats. JSON is the default; MessagePack needs the `msgpack` extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispytch.serialization.base import CONTENT_TYPE_HEADER, Deserializer, Serializer
from dispytch.serialization.codec import Codec, Encoded, JSONCodec, SerializerCodec
from dispytch.serialization.json import JSONDeserializer, JSONSerializer

if TYPE_CHECKING:
    from dispytch.serialization.msgpack import (
        MessagePackCodec,
        MessagePackDeserializer,
        MessagePackSerializer,
    )

__all__ = [
    "CONTENT_TYPE_HEADER",
    "Codec",
    "Deserializer",
    "Encoded",
    "JSONCodec",
    "JSONDeserializer",
    "JSONSerializer",
    "MessagePackCodec",
    "MessagePackDeserializer",
    "MessagePackSerializer",
    "Serializer",
    "SerializerCodec",
]


def __getattr__(name: str) -> Any:
    if name in ("MessagePackSerializer", "MessagePackDeserializer", "MessagePackCodec"):
        from dispytch.serialization import msgpack

        return getattr(msgpack, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
