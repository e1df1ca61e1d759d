"""Fixtures for the Redis backend's tests: they run against the real server.

The server is found at DISPYTCH_REDIS_URL (default redis://127.0.0.1:6379/0);
`scripts/brokers start redis` starts it. When it is unreachable the tests skip, or fail under
CI=true.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from redis.asyncio import Redis

aioredis = pytest.importorskip("redis.asyncio")

REDIS_URL = os.environ.get("DISPYTCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str) -> str | None:
    async def probe() -> None:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(probe())
    except Exception as error:
        return repr(error)
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = _reachable(REDIS_URL)
    if problem is not None:
        message = f"Redis is not reachable at {REDIS_URL} ({problem}); "
        message += "start it with scripts/brokers start redis"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
