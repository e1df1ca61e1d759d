"""The NATS JetStream backend (nats-py): `pip install 'dispytch[nats]'`.

`JetStreamTopology` imports without nats-py; the consumer, producer and dead-letter store need
it and raise `MissingExtraError` naming the extra when it is missing. See docs/backends/nats.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispytch.nats.topology import NATS_CAPABILITIES, JetStreamTopology

if TYPE_CHECKING:
    from dispytch.nats.consumer import NatsConsumer
    from dispytch.nats.dead_letter_store import NatsDeadLetterStore
    from dispytch.nats.delivery import NatsDelivery
    from dispytch.nats.producer import NatsProducer

__all__ = [
    "NATS_CAPABILITIES",
    "JetStreamTopology",
    "NatsConsumer",
    "NatsDeadLetterStore",
    "NatsDelivery",
    "NatsProducer",
]

_LAZY = {
    "NatsConsumer": "dispytch.nats.consumer",
    "NatsDeadLetterStore": "dispytch.nats.dead_letter_store",
    "NatsDelivery": "dispytch.nats.delivery",
    "NatsProducer": "dispytch.nats.producer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dispytch.nats' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
