"""Servers and the Kafka and AMQP (RabbitMQ) bindings of an AsyncAPI document.

Binding fields follow the bindings that `@asyncapi/specs` publishes: Kafka 0.5.0 (server,
channel, operation, message) and AMQP 0.3.0 (channel, operation, message; AMQP has no server
binding fields, its server binding object is reserved and left out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KAFKA = "kafka"
AMQP = "amqp"
KAFKA_BINDING = "0.5.0"
AMQP_BINDING = "0.3.0"
_DEFAULT_PORTS = {KAFKA: 9092, AMQP: 5672}
_SCHEMES = {"kafka": KAFKA, "amqp": AMQP, "amqps": AMQP}
#: the backend packages whose consumers and producers say which protocol a document speaks
_BACKEND_PACKAGES = {"dispytch.kafka": KAFKA, "dispytch.rabbitmq": AMQP}


@dataclass(frozen=True)
class Server:
    """A broker the service talks to. `host` may hold `{host}`, documented as a variable
    whose default is `default_host`. `exchange`: RabbitMQ's topic exchange."""

    name: str
    protocol: str
    host: str = "{host}"
    pathname: str | None = None
    default_host: str | None = None
    exchange: str = "dispytch"

    @classmethod
    def from_url(cls, name: str, url: str, exchange: str = "dispytch") -> Server:
        """`kafka://host:9092` or `amqp://user:password@host:5672/vhost`; any user name and
        password are left out of the document."""
        parts = urlsplit(url)
        protocol = _SCHEMES.get(parts.scheme)
        if protocol is None:
            raise ValueError(
                f"server {name!r}: unknown scheme {parts.scheme!r} (use kafka:// or amqp://)"
            )
        host = parts.hostname or ""
        if not host:
            raise ValueError(f"server {name!r}: the URL has no host")
        if ":" in host:
            host = f"[{host}]"
        port = parts.port or _DEFAULT_PORTS[protocol]
        pathname = parts.path if parts.path not in ("", "/") else None
        return cls(name, protocol, f"{host}:{port}", pathname, exchange=exchange)

    @classmethod
    def placeholder(cls, protocol: str) -> Server:
        """A server of `protocol` whose host the reader fills in (`{host}`)."""
        names = {KAFKA: "kafka", AMQP: "rabbitmq"}
        return cls(names[protocol], protocol, default_host=f"localhost:{_DEFAULT_PORTS[protocol]}")

    def document(self) -> dict[str, Any]:
        server: dict[str, Any] = {"host": self.host, "protocol": self.protocol}
        if self.pathname:
            server["pathname"] = self.pathname
        if self.protocol == AMQP:
            server["protocolVersion"] = "0.9.1"
        if "{host}" in self.host:
            server["variables"] = {
                "host": {
                    "description": "The broker's host:port.",
                    **({"default": self.default_host} if self.default_host else {}),
                }
            }
        if self.protocol == KAFKA:
            server["bindings"] = {KAFKA: {"bindingVersion": KAFKA_BINDING}}
        return server


def protocol_of(backend: object) -> str | None:
    """The protocol of a consumer or producer, by the package of its class (None: another
    backend, such as the in-memory broker, which no AsyncAPI protocol describes)."""
    module = type(backend).__module__
    for package, protocol in _BACKEND_PACKAGES.items():
        if module == package or module.startswith(package + "."):
            return protocol
    return None


def channel_bindings(
    address: str, literal: bool, protocols: set[str], exchange: str
) -> dict[str, Any]:
    bindings: dict[str, Any] = {}
    if KAFKA in protocols:
        bindings[KAFKA] = {"bindingVersion": KAFKA_BINDING}
        if literal:
            bindings[KAFKA]["topic"] = address
    if AMQP in protocols:
        bindings[AMQP] = {
            "is": "routingKey",
            "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False},
            "bindingVersion": AMQP_BINDING,
        }
    return bindings


def operation_bindings(action: str, protocols: set[str]) -> dict[str, Any]:
    bindings: dict[str, Any] = {}
    if AMQP in protocols:
        if action == "receive":
            bindings[AMQP] = {"ack": True, "bindingVersion": AMQP_BINDING}
        else:
            bindings[AMQP] = {"deliveryMode": 2, "mandatory": True, "bindingVersion": AMQP_BINDING}
    return bindings


def message_bindings(key_field: str | None, protocols: set[str]) -> dict[str, Any]:
    bindings: dict[str, Any] = {}
    if KAFKA in protocols and key_field is not None:
        bindings[KAFKA] = {
            "key": {
                "type": "string",
                "description": f"The event's {key_field!r} field: events with one key are "
                "handled in order.",
            },
            "bindingVersion": KAFKA_BINDING,
        }
    return bindings
