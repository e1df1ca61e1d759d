"""Connecting to NATS, checking streams and consumers, and translating nats-py's errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from dispytch.credentials import masked_url
from dispytch.errors import BackendError, BrokerUnavailableError, missing_extra

try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
    from nats.js.client import JetStreamContext
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("nats", "nats-py") from exc

logger = logging.getLogger("dispytch.nats")

__all__ = [
    "CONNECTION_ERRORS",
    "NATS_ERRORS",
    "Client",
    "JetStreamContext",
    "connect",
    "ensure_consumer",
    "ensure_stream",
    "nats",
]

#: errors that mean the connection is gone or not there yet
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    OSError,
)

#: everything nats-py raises for a failed operation, connection errors included
NATS_ERRORS: tuple[type[BaseException], ...] = (nats.errors.Error, *CONNECTION_ERRORS)


async def _quiet_error(error: Exception) -> None:
    logger.debug("nats client: %s", error)


async def _disconnected() -> None:
    logger.info("disconnected from NATS (reconnecting unless closed)")


async def _reconnected() -> None:
    logger.info("reconnected to NATS")


async def connect(url: str, *, connect_timeout: float = 10.0) -> Client:
    """A client that reconnects forever once connected; `BrokerUnavailableError` when the
    server cannot be reached within `connect_timeout`."""
    await _probe(url, connect_timeout)
    try:
        return await asyncio.wait_for(
            nats.connect(
                servers=[url],
                connect_timeout=min(connect_timeout, 5.0),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_quiet_error,
                disconnected_cb=_disconnected,
                reconnected_cb=_reconnected,
            ),
            connect_timeout,
        )
    except (asyncio.TimeoutError, *NATS_ERRORS) as exc:  # type: ignore[misc]
        if isinstance(exc, nats.errors.AuthorizationError):
            from urllib.parse import urlsplit

            from dispytch.security import authentication_error

            user = urlsplit(url).username
            raise authentication_error("NATS", user, "authorization violation") from exc
        raise BrokerUnavailableError(
            f"NATS is not reachable at {masked_url(url)}: {type(exc).__name__}"
        ) from exc


async def _probe(url: str, timeout: float) -> None:
    """Fail at once when nothing listens: nats-py, told to reconnect forever, would also try
    forever to make the first connection."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        address = (parts.hostname or "127.0.0.1", parts.port or 4222)
    except ValueError as exc:
        raise BrokerUnavailableError(f"invalid NATS URL {masked_url(url)!r}") from exc
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise BrokerUnavailableError(
            f"NATS is not reachable at {masked_url(url)}: {type(exc).__name__}"
        ) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: Sequence[str] | None,
    *,
    work_queue: bool = False,
) -> None:
    """Create the stream with `subjects` if missing; refuse one that holds other subjects."""
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        if subjects is None:
            raise BackendError(
                f"the JetStream stream {name!r} does not exist: create it, or give the "
                "topology its subjects so that Dispytch creates it"
            ) from None
        retention = RetentionPolicy.WORK_QUEUE if work_queue else RetentionPolicy.LIMITS
        try:
            await js.add_stream(
                StreamConfig(name=name, subjects=list(subjects), retention=retention)
            )
        except nats.js.errors.APIError as exc:
            if "already in use" in str(exc.description or ""):
                return await ensure_stream(js, name, subjects, work_queue=work_queue)
            raise BackendError(f"cannot create the JetStream stream {name!r}: {exc}") from exc
        return None
    if subjects is not None and set(info.config.subjects or ()) != set(subjects):
        raise BackendError(
            f"the JetStream stream {name!r} exists with subjects "
            f"{sorted(info.config.subjects or ())}, not {sorted(subjects)} as asked"
        )
    return None


async def ensure_consumer(
    js: JetStreamContext,
    stream: str,
    durable: str,
    subject: str,
    *,
    ack_wait: float,
    max_deliver: int,
) -> None:
    """Create the durable pull consumer if missing; refuse one configured otherwise."""
    wanted = ConsumerConfig(
        durable_name=durable,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=max_deliver,
    )
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        try:
            await js.add_consumer(stream, wanted)
        except nats.js.errors.APIError as exc:
            raise BackendError(
                f"cannot create the JetStream consumer {durable!r} on {stream!r}: {exc}"
            ) from exc
        return
    have = info.config
    differences = _differences(
        {
            "filter_subject": (have.filter_subject, subject),
            "ack_policy": (have.ack_policy, AckPolicy.EXPLICIT),
            "ack_wait": (have.ack_wait, ack_wait),
            "max_deliver": (have.max_deliver, max_deliver),
        }
    )
    if differences:
        raise BackendError(
            f"the JetStream consumer {durable!r} on stream {stream!r} exists with "
            f"{differences}: delete it or ask for the same settings"
        )


def _differences(pairs: dict[str, tuple[Any, Any]]) -> str:
    found = []
    for name, (have, want) in pairs.items():
        if isinstance(want, float) and isinstance(have, (int, float)):
            same = abs(have - want) < 0.001
        else:
            same = have == want
        if not same:
            found.append(f"{name}={have!r} (asked {want!r})")
    return ", ".join(found)
