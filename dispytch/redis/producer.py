"""`RedisStreamProducer`: XADD each message to the stream named by its topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from dispytch.backends.base import OutgoingMessage, Producer, mark_confirmed
from dispytch.errors import EmitTimeoutError, ProducerError
from dispytch.loops import LoopBinding, other_loop_error
from dispytch.redis._client import CONNECTION_ERRORS, aioredis, connect, redis_errors
from dispytch.redis._layout import encode_fields


class RedisStreamProducer(Producer):
    """Appends messages to streams (one stream per topic) and returns once Redis answered.

    `RedisStreamProducer(client)` uses your `redis.asyncio.Redis` and leaves it open;
    `RedisStreamProducer.create(url)` owns its client. Trimming (optional, approximate by
    default): `maxlen` keeps about that many entries per stream, `max_age` (seconds) drops
    entries older than that (XADD MINID). Trimming removes entries whether or not every group
    has read them: size it well above what a group can fall behind.
    """

    def __init__(
        self,
        client: aioredis.Redis | None = None,
        *,
        timeout: float | None = None,
        maxlen: int | None = None,
        max_age: float | None = None,
        approximate: bool = True,
    ) -> None:
        if maxlen is not None and max_age is not None:
            raise ValueError("trim by maxlen or by max_age, not both")
        self.client = client
        self._timeout = timeout
        self._maxlen = maxlen
        self._max_age = max_age
        self._approximate = approximate
        self._url: str | None = None
        self._connect_timeout = 10.0
        self._start_lock = asyncio.Lock()
        self._loop = LoopBinding()

    @classmethod
    def create(
        cls, url: str, *, connect_timeout: float = 10.0, **options: Any
    ) -> RedisStreamProducer:
        """A producer that connects to `url` on start (`options`: the constructor's)."""
        producer = cls(None, **options)
        producer._url = url
        producer._connect_timeout = connect_timeout
        return producer

    async def start(self) -> None:
        old = self._loop.other_loop()
        if old is not None:
            if self._url is None or not old.is_closed():
                raise other_loop_error("this RedisStreamProducer", old)
            self.client = None  # its loop is gone: so is every use of the old client
            self._loop.clear()
        if self.client is not None:
            if self._loop.loop is None:
                self._loop.bind()
            return
        async with self._start_lock:
            if self.client is None and self._url is not None:
                self.client = await connect(
                    self._url, timeout=self._connect_timeout, what="the Redis producer"
                )
                self._loop.bind()
        if self.client is None:
            raise ProducerError("RedisStreamProducer needs a client or a URL")

    async def send(self, message: OutgoingMessage, *, timeout: float | None = None) -> None:
        wait = self._timeout if timeout is None else timeout
        client: Any = self.client
        if client is None or self._loop.loop is not asyncio.get_running_loop():
            client = await self._client(wait)
        fields = encode_fields(message.value, message.key, message.headers)
        trim = self._trim() if self._maxlen is not None or self._max_age is not None else {}
        command = client.xadd(message.topic, fields, **trim)
        try:
            await (command if wait is None else asyncio.wait_for(command, wait))
        except asyncio.TimeoutError as error:
            raise EmitTimeoutError(f"Redis did not confirm within {wait} s") from error
        except Exception as error:
            raise _as_producer_error(error) from error

    async def send_many(
        self, messages: Sequence[OutgoingMessage], *, timeout: float | None = None
    ) -> None:
        if not messages:
            return
        wait = self._timeout if timeout is None else timeout
        try:
            client = await self._client(wait)
        except Exception as error:
            mark_confirmed(error, [])
            raise
        trim = self._trim()
        pipe = client.pipeline(transaction=False)
        for message in messages:
            fields = encode_fields(message.value, message.key, message.headers)
            pipe.xadd(message.topic, fields, **trim)
        executing = pipe.execute(raise_on_error=False)
        try:
            results = await (executing if wait is None else asyncio.wait_for(executing, wait))
        except asyncio.TimeoutError as error:
            raise mark_confirmed(
                EmitTimeoutError(f"Redis did not confirm within {wait} s"), []
            ) from error
        except Exception as error:
            raise mark_confirmed(_as_producer_error(error), []) from error
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            confirmed = [
                m for m, r in zip(messages, results, strict=True) if not isinstance(r, Exception)
            ]
            raise mark_confirmed(
                ProducerError(f"Redis refused {len(failed)} of {len(messages)}: {failed[0]}"),
                confirmed,
            ) from failed[0]

    async def _client(self, wait: float | None) -> Any:
        """The started client (connecting within `wait` seconds if need be)."""
        client = self.client
        if client is not None and self._loop.loop is asyncio.get_running_loop():
            return client
        starting = self.start()
        try:
            await (starting if wait is None else asyncio.wait_for(starting, wait))
        except asyncio.TimeoutError as error:
            raise EmitTimeoutError(f"could not connect to Redis within {wait} s") from error
        except Exception as error:
            raise _as_producer_error(error) from error
        return self.client

    def _trim(self) -> dict[str, Any]:
        if self._maxlen is not None:
            return {"maxlen": self._maxlen, "approximate": self._approximate}
        if self._max_age is not None:
            oldest = int((time.time() - self._max_age) * 1000)
            return {"minid": f"{max(oldest, 0)}-0", "approximate": self._approximate}
        return {}

    async def close(self) -> None:
        client, owned = self.client, self._url is not None
        if owned and client is not None:
            self.client = None
            self._loop.clear()
            await client.aclose()


def _as_producer_error(error: BaseException) -> ProducerError:
    if isinstance(error, ProducerError):
        return error
    if isinstance(error, CONNECTION_ERRORS):
        return ProducerError(f"Redis is unavailable ({type(error).__name__}: {error})")
    if isinstance(error, redis_errors.RedisError):
        return ProducerError(f"Redis refused the message ({type(error).__name__}: {error})")
    return ProducerError(f"the Redis producer failed ({type(error).__name__}: {error})")
