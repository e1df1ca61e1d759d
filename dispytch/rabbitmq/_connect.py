"""Connecting to RabbitMQ, plainly or over TLS, with failures named by their cause.

TLS is on for `amqps://` URLs. Its settings come from `ssl_context` when given, else from the
URL's query (aiormq's `cafile`, `certfile`, `keyfile`; `no_verify_ssl=1` turns verification
off, which is logged as a warning on every connect).

The URL may list the nodes of a cluster, separated by commas (`amqp://a:5672/,amqp://b:5672/`):
the first node that accepts the connection is used. A robust connection that loses its node
moves to the next node that accepts TCP connections, and aio-pika's reconnection loop
connects there (restoring channels, queues and consumers as it does for one node).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from typing import Any

from yarl import URL

from dispytch.credentials import masked, url_secrets
from dispytch.errors import BackendError, BrokerUnavailableError
from dispytch.rabbitmq._amqp import AbstractConnection, aio_pika, aiormq, make_url
from dispytch.rabbitmq._errors import CONNECTION_ERRORS
from dispytch.security import (
    authentication_error,
    causes,
    tls_error,
    warn_if_unverified,
    warn_unverified,
)

_REFUSED_LOGIN = (
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.AuthenticationError,
)
#: a comma followed by a scheme separates the URLs of a cluster's nodes (a comma may appear
#: in a password, never followed by "amqp://")
_NODE_SEPARATOR = re.compile(r"\s*,\s*(?=amqps?://)")
#: how long a failover waits for a node to accept a TCP connection before trying the next
_PROBE_TIMEOUT = 1.0

logger = logging.getLogger("dispytch.rabbitmq")


def node_urls(url: str) -> list[str]:
    """The URLs in `url`: one, or the nodes of a cluster separated by commas."""
    return [part for part in _NODE_SEPARATOR.split(url.strip()) if part]


async def connect(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
    what: str,
    reconnect_interval: float | None = None,
) -> AbstractConnection:
    """A connection to `url`: robust (reconnecting every `reconnect_interval` seconds) when
    that is given, else plain. Raises `BrokerTLSError` / `BrokerAuthenticationError` when that
    is why it failed, else `BrokerUnavailableError`; `what` says who connects."""
    urls = node_urls(url)
    for node in urls:
        warn_if_insecure(node, ssl_context, what)
    failure: tuple[BaseException, str] | None = None
    for node in urls:  # each node in turn, each within `timeout`
        try:
            connection = await _connect_node(node, ssl_context, timeout, reconnect_interval)
        except CONNECTION_ERRORS as refused:
            failure = (refused, node)
            continue
        if reconnect_interval is not None and len(urls) > 1:
            connection.close_callbacks.add(_FailOver(connection, urls))
        return connection
    assert failure is not None, "no URL to connect to"
    last, node = failure
    tried = f" (tried {len(urls)} nodes)" if len(urls) > 1 else ""
    raise connect_error(last, node, f"{what} cannot connect to RabbitMQ{tried}") from last


async def _connect_node(
    url: str,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
    reconnect_interval: float | None,
) -> AbstractConnection:
    if reconnect_interval is None:
        return await aio_pika.connect(url, timeout=timeout, ssl_context=ssl_context)
    # made here rather than by connect_robust, which leaves its reconnection task trying
    # in the background when the first attempt is cancelled (a stop while connecting)
    connection = aio_pika.RobustConnection(
        make_url(url), ssl_context=ssl_context, reconnect_interval=reconnect_interval
    )
    try:
        await connection.connect(timeout=timeout)
    except BaseException:
        await connection.close()
        raise
    return connection


class _FailOver:
    """A close callback of a robust connection to a cluster: points the connection (its public
    `url`, which every connection attempt reads) at the first node that accepts a TCP
    connection, in the order given starting after the node it lost (that node last); at the
    next node when none does."""

    def __init__(self, connection: AbstractConnection, urls: list[str]) -> None:
        self._connection = connection
        self._urls = [make_url(node) for node in urls]

    async def __call__(self, _sender: Any, _reason: Any = None) -> None:
        connection: Any = self._connection
        if connection.is_closed:  # closed on purpose: nothing to move
            return
        urls = self._urls
        # the nodes after the one lost, then that one (the callback may run twice for one
        # loss: the node it moved to must not be left for a node that is down)
        lost = urls.index(connection.url) if connection.url in urls else -1
        order = [urls[(lost + step) % len(urls)] for step in range(1, len(urls) + 1)]
        chosen = order[0]
        for candidate in order:
            if await _accepts(candidate):
                chosen = candidate
                break
        if chosen != connection.url:
            logger.warning(
                "lost the connection to RabbitMQ at %s:%s; reconnecting to %s:%s",
                connection.url.host,
                connection.url.port,
                chosen.host,
                chosen.port,
            )
            connection.url = chosen


async def _accepts(url: URL) -> bool:
    port = url.port or (5671 if url.scheme == "amqps" else 5672)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(url.host or "localhost", port), _PROBE_TIMEOUT
        )
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def connect_error(error: BaseException, url: str, what: str) -> BackendError:
    """The Dispytch error for a failed connection to `url`."""
    parsed = URL(url)
    broker = f"RabbitMQ at {parsed.host}:{parsed.port}"
    tls = tls_error(error, broker)
    if tls is not None:
        return tls
    for cause in causes(error):
        if isinstance(cause, _REFUSED_LOGIN):
            detail = str(cause.args[0]) if cause.args else type(cause).__name__
            return authentication_error(broker, parsed.user, detail)
    return BrokerUnavailableError(masked(f"{what} ({broker}): {error!r}", url_secrets(url)))


def warn_if_insecure(url: str, ssl_context: ssl.SSLContext | None, what: str) -> None:
    parsed = URL(url)
    if parsed.scheme != "amqps":
        return
    if ssl_context is not None:
        warn_if_unverified(ssl_context, what)
    elif parsed.query.get("no_verify_ssl", "0") != "0":
        warn_unverified(what, "does not verify the broker's certificate (no_verify_ssl in the URL)")
