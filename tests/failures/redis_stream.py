"""The failure tests' `Stream` on Redis Streams: a stream named like the topic, its group, the
dead-letter stream `<topic>.dlq`, and the group's retry stream and delayed set."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from dispytch.backends.base import Capabilities, Consumer, Producer

from . import clients
from .streams import NO_MORE_WAIT, Letters, Stream


class RedisStream(Stream):
    backend = "redis"

    @property
    def capabilities(self) -> Capabilities:
        from dispytch.redis.consumer import CAPABILITIES

        return CAPABILITIES

    def consumer(self, group: str | None = None) -> Consumer:
        return clients.consumer("redis", group or self.group)

    def producer(self) -> Producer:
        return clients.producer("redis")

    async def _client(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(clients.REDIS_URL)

    async def dead_letters(self, count: int, timeout: float = 20.0) -> Letters:
        from dispytch.redis._layout import decode_headers

        client = await self._client()
        stream = self.topic + ".dlq"
        try:
            deadline = time.monotonic() + timeout
            while await client.xlen(stream) < count:
                assert time.monotonic() < deadline, (
                    f"{await client.xlen(stream)}/{count} dead letters"
                )
                await asyncio.sleep(0.05)
            await asyncio.sleep(NO_MORE_WAIT)
            entries = await client.xrange(stream, "-", "+")
        finally:
            await client.aclose()
        assert len(entries) == count, f"{len(entries)} dead letters on {stream}, not {count}"
        return [(fields.get(b"v", b""), decode_headers(fields.get(b"h"))) for _, fields in entries]

    async def unsettled(self, group: str | None = None) -> int:
        """Entries of the topic the group has not read yet (lag) or not acked (pending),
        plus its delayed copies and what its retry stream holds unsettled."""
        from dispytch.redis._layout import delayed_set, retry_stream

        name = group or self.group
        client = await self._client()
        try:
            behind = int(await client.zcard(delayed_set(name)))
            for stream in (self.topic, retry_stream(name)):
                if not await client.exists(stream):
                    continue
                for info in await client.xinfo_groups(stream):
                    if info["name"].decode() == name:
                        lag = info.get("lag")
                        behind += int(info["pending"]) + (int(lag) if lag is not None else 0)
        finally:
            await client.aclose()
        return behind

    async def cleanup(self) -> None:
        from dispytch.redis._layout import delayed_set, retry_stream

        with contextlib.suppress(Exception):
            client = await self._client()
            try:
                keys = [self.topic, self.topic + ".dlq", retry_stream(self.group)]
                await client.delete(*keys, delayed_set(self.group))
            finally:
                await client.aclose()
