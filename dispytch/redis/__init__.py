"""The Redis backend (redis-py): `pip install 'dispytch[redis]'`.

- Redis Streams with consumer groups, at least once: `RedisStreamConsumer`,
  `RedisStreamProducer`, `RedisDeadLetterStore` (docs/backends/redis.md).
- Pub/Sub, at most once, the 0.10 names: `RedisConsumer(pubsub)`, `RedisProducer(redis)`.

Importing this package does not import redis-py; its classes do, and raise
`MissingExtraError` naming the extra when it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dispytch.redis.consumer import RedisStreamConsumer
    from dispytch.redis.dead_letter_store import RedisDeadLetterStore
    from dispytch.redis.delivery import RedisStreamDelivery
    from dispytch.redis.producer import RedisStreamProducer
    from dispytch.redis.pubsub import RedisConsumer, RedisProducer

__all__ = [
    "RedisConsumer",
    "RedisDeadLetterStore",
    "RedisProducer",
    "RedisStreamConsumer",
    "RedisStreamDelivery",
    "RedisStreamProducer",
]

_LAZY = {
    "RedisConsumer": "dispytch.redis.pubsub",
    "RedisProducer": "dispytch.redis.pubsub",
    "RedisDeadLetterStore": "dispytch.redis.dead_letter_store",
    "RedisStreamConsumer": "dispytch.redis.consumer",
    "RedisStreamDelivery": "dispytch.redis.delivery",
    "RedisStreamProducer": "dispytch.redis.producer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dispytch.redis' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
