"""Builds an AsyncAPI 3.0 document from listeners (receive operations, one per handler) and
`EventBase` classes (send operations, one per class).

Channels are topics: a handler's topic (its `{segment}` parts become channel parameters) or an
event's `__topic__` (its `{field}` parts become parameters located in the body). A handler and
an event class on one topic share the channel. Each message is the wire envelope with the
pydantic model as its `body`, plus the headers Dispytch reads and writes.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from dispytch.asyncapi.bindings import (
    Server,
    channel_bindings,
    message_bindings,
    operation_bindings,
)
from dispytch.asyncapi.schemas import (
    BodyUse,
    envelope_schema,
    headers_schema,
    model_schemas,
)
from dispytch.events import EventBase
from dispytch.routing.group import HandlerSpec, segment_names

ASYNCAPI_VERSION = "3.0.0"
_NOT_A_KEY = re.compile(r"[^A-Za-z0-9_\-]+")


@dataclass
class _Channel:
    key: str
    address: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: message key in the channel -> component message name
    messages: dict[str, str] = field(default_factory=dict)


def component_key(text: str, fallback: str) -> str:
    """`text` as a key of an AsyncAPI map (letters, digits, `_` and `-` only)."""
    return _NOT_A_KEY.sub("_", text).strip("_") or fallback


class AsyncAPIBuilder:
    """Collects what a service receives and sends; `document()` writes it out.

    `servers`: the brokers (their protocols decide the bindings written). `exchange`: the
    RabbitMQ exchange named in AMQP channel bindings, when no server says otherwise.
    """

    def __init__(
        self,
        title: str = "Dispytch service",
        version: str = "1.0.0",
        description: str | None = None,
        servers: Sequence[Server] = (),
    ) -> None:
        self.title = title
        self.version = version
        self.description = description
        self.servers = list(servers)
        self._handlers: list[HandlerSpec] = []
        self._events: list[type[EventBase]] = []

    def add_handlers(self, handlers: Iterable[HandlerSpec]) -> None:
        """Handlers of a listener (`listener.handlers`) or a group (`group.handlers`)."""
        for spec in handlers:
            if spec not in self._handlers:
                self._handlers.append(spec)

    def add_events(self, classes: Iterable[type[EventBase]]) -> None:
        for event_class in classes:
            if event_class not in self._events:
                self._events.append(event_class)

    # -- the document ---------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        uses: list[BodyUse] = [
            (spec.plan.body_type, "validation")
            for spec in self._handlers
            if spec.plan.body_type is not None
        ]
        uses += [(event_class, "serialization") for event_class in self._events]
        refs, schemas = model_schemas(uses)
        protocols = {server.protocol for server in self.servers}
        channels: dict[str, _Channel] = {}
        messages: dict[str, dict[str, Any]] = {}
        operations: dict[str, dict[str, Any]] = {}

        for spec in self._handlers:
            body_type = spec.plan.body_type
            body = refs[(body_type, "validation")] if body_type is not None else {}
            channel = self._channel(channels, spec.topic)
            for name in segment_names(spec.topic):
                channel.parameters.setdefault(name, {
                    "description": f"Topic segment {{{name}}}, given to handler "
                    f"{spec.name!r} as a TopicSegment parameter.",
                })
            message = self._message(
                spec.event, body, body_type, key_field=None, protocols=protocols
            )
            message_key = self._place(messages, channel, message, spec.event)
            operation_id = _unique(operations, component_key(spec.name, "handler"))
            operations[operation_id] = self._operation(
                "receive", channel, message_key, _summary(spec.plan.func), protocols
            )

        for event_class in self._events:
            template: str = event_class.__topic__
            event_type: str = event_class.__event_type__
            channel = self._channel(channels, template)
            for name in segment_names(template):
                parameter = channel.parameters.setdefault(
                    name, {"description": f"The event's {name!r} field."}
                )
                parameter.setdefault("location", f"$message.payload#/body/{name}")
            message = self._message(
                event_type,
                refs[(event_class, "serialization")],
                event_class,
                key_field=event_class.__key__,
                protocols=protocols,
            )
            message_key = self._place(messages, channel, message, event_type)
            send_id = component_key(f"send_{event_class.__name__}", "send")
            operation_id = _unique(operations, send_id)
            operations[operation_id] = self._operation(
                "send", channel, message_key, f"Emits {event_class.__name__}.", protocols
            )

        document: dict[str, Any] = {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {"title": self.title, "version": self.version},
            "defaultContentType": "application/json",
        }
        if self.description:
            document["info"]["description"] = self.description
        if self.servers:
            document["servers"] = {server.name: server.document() for server in self.servers}
        exchange = next((s.exchange for s in self.servers if s.protocol == "amqp"), "dispytch")
        document["channels"] = {
            channel.key: self._channel_document(channel, protocols, exchange)
            for channel in channels.values()
        }
        document["operations"] = operations
        document["components"] = {"schemas": schemas, "messages": messages}
        return document

    def _channel(self, channels: dict[str, _Channel], address: str) -> _Channel:
        if address not in channels:
            taken = {channel.key for channel in channels.values()}
            key = component_key(address, "channel")
            unique = key
            number = 2
            while unique in taken:
                unique = f"{key}_{number}"
                number += 1
            channels[address] = _Channel(unique, address)
        return channels[address]

    def _message(
        self,
        event_type: str,
        body: Any,
        model: type[BaseModel] | None,
        key_field: str | None,
        protocols: set[str],
    ) -> dict[str, Any]:
        any_type = event_type == "*"
        name = "any event" if any_type else event_type
        summary = _summary(model)
        message: dict[str, Any] = {
            "name": name,
            "title": f"{name}: {model.__name__}" if model is not None else name,
            "contentType": "application/json",
            "headers": headers_schema(),
            "payload": envelope_schema(event_type, body),
        }
        if summary:
            message["summary"] = summary
        bindings = message_bindings(key_field, protocols)
        if bindings:
            message["bindings"] = bindings
        return message

    def _place(
        self,
        messages: dict[str, dict[str, Any]],
        channel: _Channel,
        message: dict[str, Any],
        event_type: str,
    ) -> str:
        """Store `message` as a component (once: an equal one is reused) and list it on the
        channel; its key in the channel."""
        base = component_key(event_type, "any_event")
        name = base
        number = 2
        while name in messages and messages[name] != message:
            name = f"{base}_{number}"
            number += 1
        messages[name] = message
        channel.messages[name] = name
        return name

    def _operation(
        self,
        action: str,
        channel: _Channel,
        message_key: str,
        summary: str | None,
        protocols: set[str],
    ) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel.key}"},
            "messages": [{"$ref": f"#/channels/{channel.key}/messages/{message_key}"}],
        }
        if summary:
            operation["summary"] = summary
        bindings = operation_bindings(action, protocols)
        if bindings:
            operation["bindings"] = bindings
        return operation

    def _channel_document(
        self, channel: _Channel, protocols: set[str], exchange: str
    ) -> dict[str, Any]:
        literal = "{" not in channel.address and "*" not in channel.address
        document: dict[str, Any] = {
            "address": channel.address,
            "messages": {
                key: {"$ref": f"#/components/messages/{name}"}
                for key, name in channel.messages.items()
            },
        }
        if channel.parameters:
            document["parameters"] = channel.parameters
        if "*" in channel.address:
            document["description"] = "A topic pattern: `*` stands for any one segment."
        bindings = channel_bindings(channel.address, literal, protocols, exchange)
        if bindings:
            document["bindings"] = bindings
        return document


def _summary(thing: Any) -> str | None:
    """The first line of `thing`'s own docstring (not one inherited from pydantic)."""
    if thing is None or thing is BaseModel:
        return None
    doc = thing.__dict__.get("__doc__") if isinstance(thing, type) else thing.__doc__
    text = inspect.cleandoc(doc) if isinstance(doc, str) else ""
    return text.splitlines()[0] if text else None


def _unique(existing: dict[str, Any], key: str) -> str:
    unique = key
    number = 2
    while unique in existing:
        unique = f"{key}_{number}"
        number += 1
    return unique
