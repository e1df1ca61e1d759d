"""A TCP front for a real broker, on a loopback port of its own, that a test opens and shuts.

It lets a client see the broker down, or slow to answer, without touching the broker that
other tests share:

- `shut()`: nothing listens on the port: a connection is refused, as by a broker that is down;
- `hold()`: connections are accepted and nothing is said on them, as by a broker that is still
  coming up (or a network that drops the answers): the client waits for its own timeout;
- `open()`: connections are forwarded to the broker, including those that were held.

Only the first hop goes through the gate: a Kafka client learns the broker's own address from
the metadata and talks to it directly after bootstrapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket


class BrokerGate:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = _free_port()
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._opened = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def hold(self) -> None:
        self._opened.clear()
        await self._listen()

    async def open(self) -> None:
        self._opened.set()
        await self._listen()

    async def shut(self) -> None:
        """Stop listening and cut every connection (as a broker that went down)."""
        self._opened.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self.port, reuse_address=True
            )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._opened.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._connections.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError):
            writer.write_eof()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
