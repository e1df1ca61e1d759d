"""The Confluent wire format: magic byte 0, the schema id as 4 big-endian bytes, the payload
(Protobuf adds its message indexes before the payload)."""

from __future__ import annotations

from dispytch.schemas.errors import UndecodableRecordError

MAGIC = 0
HEADER_SIZE = 5
_MAGIC_BYTE = b"\x00"


def frame(schema_id: int, payload: bytes) -> bytes:
    return _MAGIC_BYTE + schema_id.to_bytes(4, "big") + payload


def is_framed(value: bytes) -> bool:
    """True when `value` starts like the Confluent wire format (JSON never starts with 0)."""
    return value[:1] == _MAGIC_BYTE


def schema_id_of(value: bytes) -> int:
    """The schema id of a framed message; `UndecodableRecordError` if it is not framed."""
    if len(value) < HEADER_SIZE:
        raise UndecodableRecordError(
            f"{len(value)} bytes are too few for the Confluent wire format (magic byte, schema id)"
        )
    if value[0] != MAGIC:
        raise UndecodableRecordError(f"magic byte is {value[0]}, not 0 (Confluent wire format)")
    return int.from_bytes(value[1:HEADER_SIZE], "big")
