"""Schema-on-write through a Confluent-compatible schema registry (docs/schemas.md).

Emitting: `__codec__ = Avro(registry)` (or `JSONSchema(registry)`) on an `EventBase`
subclass. Listening: `EventListener(consumer, codecs=listener_codecs(registry))`. Needs
`pip install 'dispytch[avro]'`.
"""

from dispytch.schemas.avro import Avro
from dispytch.schemas.avro_schema import AVRO_CONTENT_TYPE
from dispytch.schemas.codecs import FramedOrJSONCodec, listener_codecs
from dispytch.schemas.decoding import SchemaDecoder, SchemaRegistryCodec
from dispytch.schemas.errors import (
    RecordMismatchError,
    SchemaDefinitionError,
    SchemaError,
    SchemaIncompatibleError,
    SchemaNotRegisteredError,
    SchemaRegistryError,
    SchemaRegistryUnavailableError,
    SchemaRejectedError,
    UndecodableRecordError,
    UnknownSchemaIdError,
)
from dispytch.schemas.format import SchemaFormat
from dispytch.schemas.headers import EVENT_ID_HEADER, EVENT_TIMESTAMP_HEADER, EVENT_TYPE_HEADER
from dispytch.schemas.json_schema import JSON_SCHEMA_CONTENT_TYPE, JSONSchema
from dispytch.schemas.protobuf import PROTOBUF_CONTENT_TYPE, Protobuf
from dispytch.schemas.registry import SchemaRegistry

__all__ = [
    "AVRO_CONTENT_TYPE",
    "EVENT_ID_HEADER",
    "EVENT_TIMESTAMP_HEADER",
    "EVENT_TYPE_HEADER",
    "JSON_SCHEMA_CONTENT_TYPE",
    "PROTOBUF_CONTENT_TYPE",
    "Avro",
    "FramedOrJSONCodec",
    "JSONSchema",
    "Protobuf",
    "RecordMismatchError",
    "SchemaDecoder",
    "SchemaDefinitionError",
    "SchemaError",
    "SchemaFormat",
    "SchemaIncompatibleError",
    "SchemaNotRegisteredError",
    "SchemaRegistry",
    "SchemaRegistryCodec",
    "SchemaRegistryError",
    "SchemaRegistryUnavailableError",
    "SchemaRejectedError",
    "UndecodableRecordError",
    "UnknownSchemaIdError",
    "listener_codecs",
]
