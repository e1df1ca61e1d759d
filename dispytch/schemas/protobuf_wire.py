"""Protobuf in the Confluent wire format: the message indexes before the payload, and the
message's full name from a registered schema (a base64 FileDescriptorProto, as Confluent's
serializers register, or `.proto` source text)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dispytch.schemas.errors import UndecodableRecordError

T = TypeVar("T")
#: more nesting than this is not a real schema: refused rather than read
MAX_INDEXES = 32


def encode_indexes(indexes: list[int]) -> bytes:
    """Confluent's message indexes: `[0]` (the first message of the file) as one 0 byte,
    else the count then each index, as zig-zag varints."""
    if indexes == [0]:
        return b"\x00"
    return b"".join(_zigzag(n) for n in (len(indexes), *indexes))


def decode_indexes(payload: bytes) -> tuple[list[int], int]:
    """(indexes, where the message starts) read from the front of a Protobuf payload."""
    count, at = _read_zigzag(payload, 0)
    if count == 0:
        return [0], at
    if not 0 < count <= MAX_INDEXES:
        raise UndecodableRecordError(f"{count} Protobuf message indexes: not a valid payload")
    indexes = []
    for _ in range(count):
        index, at = _read_zigzag(payload, at)
        if index < 0:
            raise UndecodableRecordError("a negative Protobuf message index")
        indexes.append(index)
    return indexes, at


def message_name(schema_text: str, indexes: list[int]) -> str:
    """The full name of the message the indexes point to in a registered schema."""
    try:
        raw = base64.b64decode(schema_text, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if raw is not None:
        from google.protobuf import descriptor_pb2

        try:
            file = descriptor_pb2.FileDescriptorProto.FromString(raw)
        except Exception as error:
            raise UndecodableRecordError(f"not a Protobuf file descriptor: {error}") from None
        top: Sequence[Any] = list(file.message_type)
        return _walk(file.package, top, indexes, _proto_name, _proto_nested)
    return _name_in_source(schema_text, indexes)


def _walk(
    package: str,
    level: Sequence[T],
    indexes: list[int],
    name_of: Callable[[T], str],
    nested: Callable[[T], Sequence[T]],
) -> str:
    names = [package] if package else []
    for index in indexes:
        if index >= len(level):
            raise UndecodableRecordError(f"Protobuf message index {index} is not in the schema")
        names.append(name_of(level[index]))
        level = nested(level[index])
    return ".".join(names)


def _proto_name(message: Any) -> str:
    return str(message.name)


def _proto_nested(message: Any) -> Sequence[Any]:
    return list(message.nested_type)


_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[A-Za-z_][\w.]*|[{};]')


class _Message:
    def __init__(self, name: str) -> None:
        self.name = name
        self.nested: list[_Message] = []


def _name_in_source(source: str, indexes: list[int]) -> str:
    """The messages of `.proto` source text, in order and nesting (enums, services and
    options skipped), enough to follow message indexes."""
    tokens = _TOKEN.findall(_COMMENT.sub(" ", source))
    package = ""
    top: list[_Message] = []
    stack: list[list[_Message] | None] = [top]  # None: a block that holds no messages of ours
    for at, token in enumerate(tokens):
        if token == "package" and len(stack) == 1 and at + 1 < len(tokens):
            package = tokens[at + 1]
        elif token == "{":
            opener = tokens[at - 2] if at >= 2 else ""
            if opener == "message" and stack[-1] is not None:
                message = _Message(tokens[at - 1])
                stack[-1].append(message)
                stack.append(message.nested)
            else:
                stack.append(None)
        elif token == "}":
            if len(stack) == 1:
                raise UndecodableRecordError("unbalanced braces in the Protobuf schema")
            stack.pop()
    return _walk(package, top, indexes, _source_name, _source_nested)


def _source_name(message: _Message) -> str:
    return message.name


def _source_nested(message: _Message) -> Sequence[_Message]:
    return message.nested


def _zigzag(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_zigzag(data: bytes, at: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise UndecodableRecordError("the Protobuf message indexes are cut short")
        byte = data[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), at
        shift += 7


def protobuf_reader(
    schema_text: str, where: str, messages: dict[str, Any]
) -> Callable[[bytes], tuple[str, Any]]:
    """Reads payloads of a Protobuf schema with the listener's message classes (by full name)
    into dicts (field names as in the .proto, fields at their defaults included)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    names: dict[tuple[int, ...], str] = {}
    to_dict = _message_to_dict(json_format)

    def read(payload: bytes) -> tuple[str, Any]:
        indexes, at = decode_indexes(payload)
        key = tuple(indexes)
        name = names.get(key)
        if name is None:
            name = names[key] = message_name(schema_text, indexes)
        message_class = messages.get(name)
        if message_class is None:
            raise UndecodableRecordError(
                f"{where}: no message class for {name}: give it to the listener "
                "(listener_codecs(registry, messages=[...]))"
            )
        try:
            message = message_class.FromString(payload[at:])
        except DecodeError as error:
            raise UndecodableRecordError(
                f"payload does not decode as the Protobuf message {name}: {error}"
            ) from None
        return name, to_dict(message)

    return read


def _message_to_dict(json_format: Any) -> Callable[[Any], Any]:
    import inspect

    parameters = inspect.signature(json_format.MessageToDict).parameters
    defaults = (
        "always_print_fields_with_no_presence"
        if "always_print_fields_with_no_presence" in parameters
        else "including_default_value_fields"
    )
    options = {"preserving_proto_field_name": True, defaults: True}
    return lambda message: json_format.MessageToDict(message, **options)
