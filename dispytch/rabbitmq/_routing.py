"""The routing key and topic of a received message, from what the broker routed it by.

RabbitMQ's permissions (topic authorisation) are per routing key, and the broker routes by
the routing key only. So the routing key of the delivery decides which handlers may run; a
header a publisher wrote can never choose another one:

- `dispytch-topic` is honoured only when it translates (delimiter -> ".") to exactly the
  routing key: it restores the delimiter that the routing key lost, nothing more. Any topic it
  can name, a publisher allowed on that routing key could have emitted anyway. Otherwise the
  header is ignored (logged) and the topic is the routing key itself.
- `dispytch-routing-key` is honoured only on a message that the broker dead-lettered back
  into this queue from one of its delay queues (`<queue>.delay.<ms>`, through the default
  exchange with the queue's name as routing key): a delayed redelivery, whose routing key was
  checked when it first arrived. On anything else it is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dispytch.rabbitmq.headers import ROUTING_KEY_HEADER, TOPIC_HEADER
from dispytch.rabbitmq.topology import delay_queue_prefix, routing_key_for

logger = logging.getLogger("dispytch.rabbitmq")

_SHOWN = 200  # characters of an ignored header shown in the log line


def delivered_routing_key(
    exchange: str | None, routing_key: str, queue: str, raw: Mapping[str, Any]
) -> str:
    """The routing key the message was routed by when it was first published."""
    original = raw.get(ROUTING_KEY_HEADER)
    if original is None:
        return routing_key
    if exchange == "" and routing_key == queue and _expired_from_delay_queue(raw, queue):
        return _text(original)
    logger.warning(
        "ignored the %s header %r on a message routed by %r: it is not a delayed redelivery",
        ROUTING_KEY_HEADER,
        _text(original)[:_SHOWN],
        routing_key[:_SHOWN],
    )
    return routing_key


def delivered_topic(routing_key: str, raw: Mapping[str, Any], delimiter: str | None) -> str:
    """The topic: the `dispytch-topic` header when it maps to `routing_key`, else the key."""
    claimed = raw.get(TOPIC_HEADER)
    if claimed is None:
        return routing_key
    topic = _text(claimed)
    if topic == routing_key or routing_key_for(topic, delimiter) == routing_key:
        return topic
    logger.warning(
        "ignored the %s header %r on a message routed by %r: it does not map to that "
        "routing key; the topic is the routing key",
        TOPIC_HEADER,
        topic[:_SHOWN],
        routing_key[:_SHOWN],
    )
    return routing_key


def _expired_from_delay_queue(raw: Mapping[str, Any], queue: str) -> bool:
    """The broker's latest dead-lettering of the message was an expiry in a delay queue of
    `queue` (x-death lists the most recent first)."""
    deaths = raw.get("x-death")
    if not isinstance(deaths, (list, tuple)) or not deaths or not isinstance(deaths[0], dict):
        return False
    latest = deaths[0]
    return _text(latest.get("reason", "")) == "expired" and _text(
        latest.get("queue", "")
    ).startswith(delay_queue_prefix(queue))


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode(errors="replace")
    return str(value)
