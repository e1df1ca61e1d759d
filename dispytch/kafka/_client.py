"""What Dispytch needs to know about (and do to) an aiokafka consumer it owns or wraps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaConsumer

from dispytch.kafka._errors import KAFKA_EXCEPTIONS

log = logging.getLogger("dispytch.kafka")

#: options of a consumer that also apply to the producer and admin client it creates
CONNECTION_OPTIONS = frozenset(
    {
        "client_id",
        "request_timeout_ms",
        "retry_backoff_ms",
        "metadata_max_age_ms",
        "connections_max_idle_ms",
        "api_version",
        "security_protocol",
        "ssl_context",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)


def connection_options(
    create_options: dict[str, Any] | None, client: AIOKafkaConsumer | None
) -> dict[str, Any]:
    """Connection settings for the clients a consumer creates next to it: from the options of
    `KafkaConsumer.create()`, else read from the wrapped client."""
    if create_options is not None:
        options = {k: v for k, v in create_options.items() if k in CONNECTION_OPTIONS}
        options["bootstrap_servers"] = create_options["bootstrap_servers"]
        return options
    kafka_client = getattr(client, "_client", None)
    if kafka_client is None:
        raise ValueError("pass dead_letter_producer= to KafkaConsumer to store dead letters")
    options = {"bootstrap_servers": kafka_client._bootstrap_servers}
    for name in CONNECTION_OPTIONS:
        value = getattr(kafka_client, "_" + name, None)
        if value is not None:
            options[name] = value
    return options


def group_id(client: AIOKafkaConsumer | None, create_options: dict[str, Any] | None) -> str | None:
    if create_options is not None:
        group: str | None = create_options["group_id"]
        return group
    return getattr(client, "_group_id", None)


def subscribed_topics(client: AIOKafkaConsumer) -> tuple[frozenset[str], str | None] | None:
    """The topics or the pattern a client is subscribed to; None when it is not subscribed."""
    state = getattr(client, "_subscription", None)
    if state is None:
        return None
    pattern = getattr(state, "_subscribed_pattern", None)
    if pattern is not None:
        return frozenset(), pattern.pattern
    subscription = state.subscription
    if subscription is None:
        return None
    return frozenset(subscription.topics), None


def install_listener(client: AIOKafkaConsumer, listener: Any) -> Any:
    """Put our rebalance listener in front of the one the user subscribed with (returned)."""
    state = client._subscription
    previous = getattr(state, "_listener", None)
    state._listener = listener
    return previous


def is_started(client: AIOKafkaConsumer) -> bool:
    return getattr(client, "_fetcher", None) is not None


def offset_reset(client: AIOKafkaConsumer) -> str:
    return str(getattr(client, "_auto_offset_reset", "latest"))


def warn_about_wrapped_client(client: AIOKafkaConsumer) -> bool:
    """Log what a wrapped client's settings break; False when it cannot commit at all."""
    if getattr(client, "_enable_auto_commit", False):
        log.warning(
            "the Kafka consumer has enable_auto_commit=True: aiokafka commits offsets of "
            "events that are still being handled, so at-least-once cannot be guaranteed; "
            "create it with enable_auto_commit=False"
        )
    if getattr(client, "_group_id", None) is None:
        log.warning(
            "the Kafka consumer has no group_id: offsets cannot be committed, "
            "so a restart reads from its auto_offset_reset position again"
        )
        return False
    return True


async def quiet_stop(client: Any) -> None:
    """Stop an aiokafka client, logging its errors instead of raising them.

    It runs in a task of its own: while the broker is down, aiokafka's stop awaits internal
    tasks it has just cancelled, and their CancelledError would otherwise reach our caller as
    if the caller itself had been cancelled."""
    stopping = asyncio.ensure_future(client.stop())
    try:
        await asyncio.wait({stopping})
    except asyncio.CancelledError:
        stopping.cancel()
        raise
    if stopping.cancelled():
        log.debug("the Kafka client's stop ended in a cancellation of its own")
        return
    error = stopping.exception()
    if error is not None:
        if not isinstance(error, KAFKA_EXCEPTIONS):
            raise error
        log.debug("stopping the Kafka client failed: %r", error)


#: seconds each last step of `close()` may take when the broker does not answer
_CLOSE_STEP_TIMEOUT = 5.0


async def bounded(step: Awaitable[None], what: str) -> None:
    try:
        await asyncio.wait_for(step, _CLOSE_STEP_TIMEOUT)
    except asyncio.TimeoutError:
        log.warning(
            "%s took longer than %.0fs (is the broker down?); going on", what, _CLOSE_STEP_TIMEOUT
        )
