"""What Dispytch needs to know about (and do to) an aiokafka consumer it owns or wraps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaConsumer

from dispytch.credentials import masked_url
from dispytch.kafka import _aiokafka_private as private
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
    options = {} if client is None else private.connection_settings(client, CONNECTION_OPTIONS)
    if not options:
        raise ValueError("pass dead_letter_producer= to KafkaConsumer to store dead letters")
    return options


def group_id(client: AIOKafkaConsumer | None, create_options: dict[str, Any] | None) -> str | None:
    if create_options is not None:
        group: str | None = create_options["group_id"]
        return group
    return None if client is None else private.group_id(client)


def describe_consumer(
    client: AIOKafkaConsumer | None, create_options: dict[str, Any] | None
) -> str:
    """`KafkaConsumer.describe()`: its group and bootstrap servers (credentials masked)."""
    group = group_id(client, create_options)
    if create_options is None:
        return f"KafkaConsumer(group={group!r}, wrapped client)"
    servers = create_options["bootstrap_servers"]
    shown = [masked_url(s) for s in ([servers] if isinstance(servers, str) else servers)]
    return f"KafkaConsumer(group={group!r}, bootstrap_servers={','.join(shown)!r})"


subscribed_topics = private.subscription
install_listener = private.put_listener_first
is_started = private.consumer_started


def warn_about_wrapped_client(client: AIOKafkaConsumer) -> bool:
    """Log what a wrapped client's settings break; False when it cannot commit at all."""
    if private.auto_commit_enabled(client):
        log.warning(
            "the Kafka consumer has enable_auto_commit=True: aiokafka commits offsets of "
            "events that are still being handled, so at-least-once cannot be guaranteed; "
            "create it with enable_auto_commit=False"
        )
    if private.group_id(client) is None:
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


async def reaches_broker(client: AIOKafkaConsumer, timeout: float) -> bool:
    """Whether the cluster answers a metadata request (aiokafka's public `topics()`) within
    `timeout` seconds: a readiness check, never raises."""
    try:
        await asyncio.wait_for(client.topics(), timeout)
    except Exception:  # the broker away (a timeout included): not connected
        return False
    return True
