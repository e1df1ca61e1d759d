"""JSON, the default wire format (and the only one dispytch 0.10 spoke by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic_core


class JSONSerializer:
    content_type = "application/json"

    def serialize(self, payload: Mapping[str, Any]) -> bytes:
        return pydantic_core.to_json(payload)


class JSONDeserializer:
    def deserialize(self, data: bytes) -> Any:
        return pydantic_core.from_json(data)
