"""AsyncAPI 3.0 documents of Dispytch services (`dispytch asyncapi` writes them).

    document = build_asyncapi(listener, events_module, title="Users", version="2.1.0")

Each object given may be an `EventListener` or a `HandlerGroup` (a receive operation per
handler), an
`EventEmitter` (its broker's protocol), an `EventBase` subclass (a send operation), or a module
(its `EventBase` subclasses that have a `__topic__` and an `__event_type__`, and its listeners,
groups and emitters). `servers` describe the brokers; for a Kafka or RabbitMQ backend that no server
describes, a server with a `{host}` variable is written.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterable, Sequence
from typing import Any

from dispytch.asyncapi.bindings import Server, protocol_of
from dispytch.asyncapi.document import AsyncAPIBuilder
from dispytch.emitter import EventEmitter
from dispytch.events import EventBase
from dispytch.listener import EventListener
from dispytch.routing.group import HandlerGroup, HandlerSpec


def build_asyncapi(
    *objects: Any,
    title: str = "Dispytch service",
    version: str = "1.0.0",
    description: str | None = None,
    servers: Sequence[Server] = (),
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-compatible dict) of `objects` (see the module)."""
    handlers: list[HandlerSpec] = []
    events: list[type[EventBase]] = []
    protocols: set[str] = set()
    for found in _expand(objects):
        if isinstance(found, EventListener):
            handlers.extend(found.handlers)
            protocols.add(protocol_of(found.consumer) or "")
        elif isinstance(found, HandlerGroup):
            handlers.extend(found.handlers)
        elif isinstance(found, EventEmitter):
            protocols.add(protocol_of(found.producer) or "")
        elif isinstance(found, type) and issubclass(found, EventBase):
            events.append(found)
        else:
            raise TypeError(
                f"cannot describe a {type(found).__name__}: give listeners, handler groups, "
                "emitters, EventBase classes or modules"
            )
    described = {server.protocol for server in servers}
    placeholders = [
        Server.placeholder(protocol) for protocol in sorted(protocols - described - {""})
    ]
    builder = AsyncAPIBuilder(title, version, description, [*servers, *placeholders])
    builder.add_handlers(handlers)
    builder.add_events(events)
    return builder.document()


def event_classes(module: types.ModuleType) -> list[type[EventBase]]:
    """The concrete event classes a module holds (defined or imported there)."""
    found = []
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, EventBase)
            and isinstance(getattr(value, "__topic__", None), str)
            and isinstance(getattr(value, "__event_type__", None), str)
        ):
            found.append(value)
    return found


def _expand(objects: Iterable[Any]) -> Iterable[Any]:
    for found in objects:
        if isinstance(found, types.ModuleType):
            yield from event_classes(found)
            yield from (
                value for value in vars(found).values()
                if isinstance(value, (EventListener, EventEmitter, HandlerGroup))
            )
        else:
            yield found


def dump(document: dict[str, Any], format: str = "json") -> str:
    """The document as JSON or YAML text (YAML needs PyYAML: `dispytch[asyncapi]`)."""
    if format == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if format == "yaml":
        import yaml

        return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    raise ValueError(f"unknown format {format!r}: json or yaml")


__all__ = ["AsyncAPIBuilder", "Server", "build_asyncapi", "dump", "event_classes"]
