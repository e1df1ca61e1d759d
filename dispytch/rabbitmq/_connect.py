"""Connecting to RabbitMQ, plainly or over TLS, with failures named by their cause.

TLS is on for `amqps://` URLs. Its settings come from `ssl_context` when given, else from the
URL's query (aiormq's `cafile`, `certfile`, `keyfile`; `no_verify_ssl=1` turns verification
off, which is logged as a warning on every connect).
"""

from __future__ import annotations

import ssl

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
    warn_if_insecure(url, ssl_context, what)
    try:
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
    except CONNECTION_ERRORS as error:
        raise connect_error(error, url, f"{what} cannot connect to RabbitMQ") from error


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
