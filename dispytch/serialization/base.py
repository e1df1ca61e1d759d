"""What a wire format provides: payload dict to bytes and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Serializer(Protocol):
    """Turns an envelope (JSON-compatible data) into bytes."""

    content_type: str

    def serialize(self, payload: Mapping[str, Any]) -> bytes: ...


@runtime_checkable
class Deserializer(Protocol):
    """Turns bytes back into an envelope. Raises `ValueError` (or a subclass) on bad bytes."""

    def deserialize(self, data: bytes) -> Any: ...


CONTENT_TYPE_HEADER = "content-type"
