"""The errors of the schema formats. None of them holds a registry password."""

from __future__ import annotations

from dispytch.errors import DispytchError, EnvelopeError


class SchemaError(DispytchError):
    """Base class of the schema formats' errors."""


class SchemaDefinitionError(SchemaError, TypeError):
    """An event class cannot get a schema: a field's type has no mapping (the message names
    the field), or an explicit schema does not parse. Raised when the class is defined."""


class SchemaRegistryError(SchemaError):
    """The schema registry answered with an error that is none of the cases below."""


class SchemaRegistryUnavailableError(SchemaRegistryError, ConnectionError):
    """The registry cannot be reached, did not answer in time, or answered 5xx. On receive,
    the message waits and the fetch is tried again with backoff; on emit, this is raised."""


class SchemaRejectedError(SchemaRegistryError, ValueError):
    """The registry refused a schema (invalid). Emitting raises `EventSerializationError` from
    it: nothing is sent."""


class SchemaIncompatibleError(SchemaRejectedError):
    """The registry refused a new version of a subject's schema as incompatible with the
    subject's compatibility level (BACKWARD, FORWARD, FULL, ...)."""


class SchemaNotRegisteredError(SchemaRegistryError, ValueError):
    """Auto-registration is off and the event's schema is not registered under its subject."""


class UnknownSchemaIdError(SchemaRegistryError, LookupError):
    """The registry has no schema with a message's id (yet). The message waits and the fetch
    is tried again with backoff."""


class UndecodableRecordError(EnvelopeError):
    """Bytes that can never be decoded: no Confluent framing, a payload that does not match
    its writer schema, a schema that does not parse. The message is dead-lettered."""


class RecordMismatchError(SchemaError, ValueError):
    """An event does not fit its schema (a value of the wrong type, a missing field)."""
