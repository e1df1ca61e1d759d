"""The RabbitMQ backend (aio-pika): `pip install 'dispytch[rabbitmq]'`.

`RabbitMQEventConfig` imports without aio-pika; the consumer and producer need it and raise
`MissingExtraError` naming the extra when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dispytch.rabbitmq.config import RabbitMQEventConfig

if TYPE_CHECKING:
    from dispytch.rabbitmq.consumer import RabbitMQConsumer
    from dispytch.rabbitmq.dead_letter_store import RabbitMQDeadLetterStore
    from dispytch.rabbitmq.delivery import RabbitMQDelivery
    from dispytch.rabbitmq.producer import RabbitMQProducer

__all__ = [
    "RabbitMQConsumer",
    "RabbitMQDeadLetterStore",
    "RabbitMQDelivery",
    "RabbitMQEventConfig",
    "RabbitMQProducer",
]

_LAZY = {
    "RabbitMQConsumer": "dispytch.rabbitmq.consumer",
    "RabbitMQDeadLetterStore": "dispytch.rabbitmq.dead_letter_store",
    "RabbitMQDelivery": "dispytch.rabbitmq.delivery",
    "RabbitMQProducer": "dispytch.rabbitmq.producer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dispytch.rabbitmq' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
