"""redis-py, imported in one place, and how its errors become Dispytch's."""

from __future__ import annotations

from typing import Any

from dispytch.credentials import masked_url
from dispytch.errors import BrokerAuthenticationError, BrokerUnavailableError, missing_extra

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("redis", "redis") from exc

__all__ = ["CONNECTION_ERRORS", "aioredis", "connect", "redis_errors", "unavailable"]

#: the server went away or cannot be reached
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    ConnectionError,
    OSError,
)


def unavailable(what: str, error: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError(f"{what}: Redis is unavailable ({type(error).__name__}: {error})")


async def connect(url: str, *, timeout: float, what: str, **options: Any) -> aioredis.Redis:
    """A client for `url` that answered PING within `timeout` seconds."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url, socket_connect_timeout=timeout, health_check_interval=30, **options
    )
    try:
        await client.ping()
    except redis_errors.AuthenticationError:
        await client.aclose()
        raise BrokerAuthenticationError(
            f"{what}: Redis at {masked_url(url)} refused the credentials"
        ) from None
    except redis_errors.ResponseError as error:
        await client.aclose()
        if any(word in str(error) for word in ("NOAUTH", "WRONGPASS", "AUTH")):
            raise BrokerAuthenticationError(
                f"{what}: Redis at {masked_url(url)} refused the credentials"
            ) from None
        raise BrokerUnavailableError(
            f"{what}: Redis at {masked_url(url)} refused the connection ({type(error).__name__})"
        ) from None
    except CONNECTION_ERRORS as error:
        await client.aclose()
        raise BrokerUnavailableError(
            f"{what}: cannot reach Redis at {masked_url(url)} ({type(error).__name__})"
        ) from None
    return client
