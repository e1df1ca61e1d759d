"""Why a Kafka client could not start over TLS or SASL, named in the error it raises.

aiokafka reports any failure to reach the bootstrap servers as "Unable to bootstrap from
[...]" and only logs the cause (a failed certificate check, a refused login). When the
connection is secured, the bootstrap servers are connected to once more, with aiokafka's own
connection function and the same settings, to learn that cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.conn import create_conn

from dispytch.errors import BackendError, BrokerSecurityError
from dispytch.kafka._errors import KAFKA_EXCEPTIONS, connection_error
from dispytch.security import authentication_error, causes, tls_error, warn_if_unverified

log = logging.getLogger("dispytch.kafka")

#: the options `aiokafka.conn.create_conn` takes
_CONN_OPTIONS = frozenset(
    {
        "client_id",
        "ssl_context",
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_kerberos_service_name",
        "sasl_kerberos_domain_name",
        "sasl_oauth_token_provider",
    }
)
_AUTHENTICATION_FAILED = (
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
)
_MECHANISM_REFUSED = (
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.AuthenticationMethodNotSupported,
)
_DIAGNOSE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    asyncio.TimeoutError,
    ssl.SSLError,
    *KAFKA_EXCEPTIONS,
)
#: seconds the diagnosing connection may take
_DIAGNOSE_TIMEOUT = 10.0


def warn_if_insecure(options: Mapping[str, Any] | None, what: str) -> None:
    """The loud warning when a client is given a TLS context that does not verify."""
    if options is not None and _uses_tls(options):
        context = options.get("ssl_context")
        warn_if_unverified(context if isinstance(context, ssl.SSLContext) else None, what)


async def start_error(
    exc: BaseException, options: Mapping[str, Any] | None, what: str
) -> BackendError:
    """The error to raise when a client made with `options` failed to start with `exc`:
    `BrokerTLSError` or `BrokerAuthenticationError` when that is the cause, else the usual
    translation (`connection_error`)."""
    servers = _servers(options)
    error = _security_error(exc, servers[0] if servers else None, options)
    if error is not None:
        return error
    if options is not None and _is_secured(options) and servers:
        cause = await _diagnose(servers, options)
        if cause is not None:
            host, port, problem = cause
            error = _security_error(problem, (host, port), options)
            if error is not None:
                return error
    return connection_error(exc, what)


def _security_error(
    exc: BaseException, server: tuple[str, int] | None, options: Mapping[str, Any] | None
) -> BackendError | None:
    broker = f"Kafka at {server[0]}:{server[1]}" if server else "Kafka"
    tls = tls_error(exc, broker)
    if tls is not None:
        return tls
    for cause in causes(exc):
        if isinstance(cause, _AUTHENTICATION_FAILED):
            user = (options or {}).get("sasl_plain_username")
            detail = str(cause.args[0]) if cause.args else type(cause).__name__
            return authentication_error(broker, user, detail)
        if isinstance(cause, _MECHANISM_REFUSED):
            mechanism = (options or {}).get("sasl_mechanism")
            return BrokerSecurityError(
                f"SASL mechanism refused: {broker} does not accept {mechanism!r} ({cause})",
                reason="SASL mechanism refused",
            )
        if isinstance(cause, kafka_errors.IllegalSaslStateError):
            return BrokerSecurityError(
                f"SASL not expected: {broker} does not expect a SASL login on this listener "
                "(is it the port of a SASL listener, and security_protocol the listener's?)",
                reason="SASL not expected",
            )
    return None


async def _diagnose(
    servers: list[tuple[str, int]], options: Mapping[str, Any]
) -> tuple[str, int, BaseException] | None:
    """The first bootstrap server that refuses a connection with `options`, and why."""
    settings = {name: value for name, value in options.items() if name in _CONN_OPTIONS}
    for host, port in servers:
        try:
            connection = await asyncio.wait_for(
                create_conn(host, port, **settings), _DIAGNOSE_TIMEOUT
            )
        except _DIAGNOSE_EXCEPTIONS as problem:
            return host, port, problem
        with contextlib.suppress(*KAFKA_EXCEPTIONS):
            connection.close()
    return None


def _servers(options: Mapping[str, Any] | None) -> list[tuple[str, int]]:
    if options is None:
        return []
    given = options.get("bootstrap_servers") or []
    entries = given.split(",") if isinstance(given, str) else list(given)
    servers = []
    for entry in entries:
        host, _, port = str(entry).strip().rpartition(":")
        if host and port.isdigit():
            servers.append((host.strip("[]"), int(port)))
    return servers


def _uses_tls(options: Mapping[str, Any]) -> bool:
    return str(options.get("security_protocol", "PLAINTEXT")).upper() in ("SSL", "SASL_SSL")


def _is_secured(options: Mapping[str, Any]) -> bool:
    return str(options.get("security_protocol", "PLAINTEXT")).upper() != "PLAINTEXT"
