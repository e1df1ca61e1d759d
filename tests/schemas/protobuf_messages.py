"""Protobuf message classes as a user's generated code would give them, built from a file
descriptor at run time (no protoc needed): a file `orders_<n>.proto` in package
`com.example.<n>` with the messages `Header` and `OrderPlaced` (index 1)."""

from __future__ import annotations

import uuid
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FieldProto = descriptor_pb2.FieldDescriptorProto


def order_messages() -> tuple[Any, Any]:
    """(Header, OrderPlaced) message classes of a new, uniquely named file."""
    suffix = uuid.uuid4().hex[:8]
    file = descriptor_pb2.FileDescriptorProto(
        name=f"orders_{suffix}.proto", package=f"com.example.o{suffix}", syntax="proto3"
    )
    header = file.message_type.add(name="Header")
    header.field.add(name="source", number=1, type=FieldProto.TYPE_STRING, label=1)
    order = file.message_type.add(name="OrderPlaced")
    order.field.add(name="order_id", number=1, type=FieldProto.TYPE_INT64, label=1)
    order.field.add(name="item", number=2, type=FieldProto.TYPE_STRING, label=1)
    order.field.add(name="quantity", number=3, type=FieldProto.TYPE_INT32, label=1)
    order.field.add(name="tags", number=4, type=FieldProto.TYPE_STRING, label=3)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    classes = [
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.{name}"))
        for name in ("Header", "OrderPlaced")
    ]
    return classes[0], classes[1]
