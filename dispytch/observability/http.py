"""A small HTTP endpoint for scrapers and probes: `GET /metrics` (Prometheus text format),
`GET /health/live` and `GET /health/ready` (200 or 503, with a JSON body saying why).

It is meant for a private port (it binds 127.0.0.1 unless told otherwise) and is bounded on
every side: one request per connection, a request head of at most 8 KiB read within a few
seconds, a limited number of connections at once (others are closed unanswered), and only GET
and HEAD. Run it as `async with ObservabilityServer(...)` next to the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

logger = logging.getLogger("dispytch.observability")

__all__ = ["ObservabilityServer"]

_MAX_HEAD = 8192
_READ_TIMEOUT = 5.0
_WRITE_TIMEOUT = 10.0
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}

#: a response: status, content type, body
Response = tuple[int, str, bytes]


class ObservabilityServer:
    """Serves `metrics` (a `PrometheusMetrics`, or None for no `/metrics`) and `health` (a
    `Health`, or None for no `/health/*`). `port=0` picks a free port (read `port` after
    `start()`)."""

    def __init__(
        self,
        *,
        metrics: Any = None,
        health: Any = None,
        host: str = "127.0.0.1",
        port: int = 9464,
        max_connections: int = 16,
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.host = host
        self.port = port
        self._slots = asyncio.BoundedSemaphore(max_connections)
        self._server: asyncio.Server | None = None
        self._routes: dict[str, Callable[[], Awaitable[Response]]] = {}
        if metrics is not None:
            self._routes["/metrics"] = self._metrics
        if health is not None:
            self._routes["/health/live"] = self._live
            self._routes["/health/ready"] = self._ready

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=_MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("observability endpoint on http://%s:%d", self.host, self.port)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> ObservabilityServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._slots.locked():  # busy: close at once rather than queue without bound
            writer.close()
            return
        async with self._slots:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
                status, content_type, body = await self._respond(head)
                method = head.split(b" ", 1)[0]
                writer.write(_response(status, content_type, b"" if method == b"HEAD" else body))
                await asyncio.wait_for(writer.drain(), _WRITE_TIMEOUT)
            except (
                OSError,
                asyncio.TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ):
                pass  # a client that went away, was too slow, or sent too much: no answer
            except Exception:
                logger.exception("the observability endpoint failed to answer")
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), _WRITE_TIMEOUT)

    async def _respond(self, head: bytes) -> Response:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(request_line) != 3:
            return 404, "text/plain", b"bad request\n"
        method, target, _ = request_line
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"only GET\n"
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return 404, "text/plain", b"not found\n"
        return await route()

    async def _metrics(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return 200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)

    async def _live(self) -> Response:
        return _health(await self.health.live())

    async def _ready(self) -> Response:
        return _health(await self.health.ready())


def _health(report: Any) -> Response:
    body = json.dumps(report.as_dict(), sort_keys=True).encode() + b"\n"
    return (200 if report.ok else 503), "application/json", body


def _response(status: int, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
