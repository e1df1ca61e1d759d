"""Where the documentation's examples find each real broker, and a gate for tests that run them.

The examples name the local brokers' default addresses; `address_of` gives the one this run
uses (the DISPYTCH_* variables of `scripts/brokers env`), so a test can put it in their place.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest


@dataclass(frozen=True)
class Broker:
    name: str
    variable: str
    #: the address exactly as the documentation writes it
    documented: str
    default_port: int

    @property
    def address(self) -> str:
        return os.environ.get(self.variable, self.documented)

    def variable_is_set(self) -> bool:
        return bool(os.environ.get(self.variable))

    def host_and_port(self) -> tuple[str, int]:
        first = self.address.split(",")[0]
        parts = urlsplit(first if "://" in first else f"kafka://{first}")
        return parts.hostname or "127.0.0.1", parts.port or self.default_port


BROKERS = {
    "kafka": Broker("kafka", "DISPYTCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", 9092),
    "rabbitmq": Broker(
        "rabbitmq", "DISPYTCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/", 5672
    ),
    "redis": Broker("redis", "DISPYTCH_REDIS_URL", "redis://127.0.0.1:6379/0", 6379),
    "nats": Broker("nats", "DISPYTCH_NATS_URL", "nats://127.0.0.1:4222", 4222),
}


def require(name: str) -> Broker:
    """The broker, once it answers; otherwise skip, or fail under CI=true (CI must run it)."""
    broker = BROKERS[name]
    try:
        with socket.create_connection(broker.host_and_port(), timeout=2):
            return broker
    except OSError:
        message = f"{name} is not reachable at {broker.address} (scripts/brokers start {name})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
