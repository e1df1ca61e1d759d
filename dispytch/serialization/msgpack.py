"""MessagePack, optional (`pip install dispytch[msgpack]`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispytch.envelope import Envelope, read_envelope
from dispytch.errors import missing_extra

try:
    import msgpack
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("msgpack", "msgpack") from exc


class MessagePackSerializer:
    content_type = "application/msgpack"

    def serialize(self, payload: Mapping[str, Any]) -> bytes:
        return msgpack.packb(payload, use_bin_type=True)  # type: ignore[no-any-return]


class MessagePackDeserializer:
    def deserialize(self, data: bytes) -> Any:
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
            raise ValueError(f"not valid MessagePack: {exc}") from exc


class MessagePackCodec:
    """The 0.10 envelope as MessagePack."""

    content_type = "application/msgpack"

    def __init__(self) -> None:
        self._serializer = MessagePackSerializer()
        self._deserializer = MessagePackDeserializer()

    def encode(self, envelope: Mapping[str, Any], event: Any) -> tuple[bytes, Mapping[str, str]]:
        return self._serializer.serialize(envelope), {}

    def decode(self, value: bytes, headers: Mapping[str, str]) -> Envelope:
        return read_envelope(self._deserializer.deserialize(value))
