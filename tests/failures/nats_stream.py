"""The failure tests' stream on NATS JetStream: a JetStream stream of its own per test (so its
dead-letter and retry streams are the test's too), holding the test's topic only."""

from __future__ import annotations

import asyncio
import contextlib
import time

from dispytch.backends.base import Capabilities, Consumer, Producer
from dispytch.nats import JetStreamTopology
from dispytch.nats._client import Client, JetStreamContext

from . import clients
from .streams import NO_MORE_WAIT, Letters, Stream


class NatsStream(Stream):
    backend = "nats"

    def __init__(self) -> None:
        super().__init__()
        #: the JetStream stream: its name rides in the worker's --exchange argument
        self.exchange = "FAIL_" + self.name.removeprefix("fail-")
        self.groups = {self.group}

    @property
    def capabilities(self) -> Capabilities:
        from dispytch.nats import NATS_CAPABILITIES

        return NATS_CAPABILITIES

    @property
    def topology(self) -> JetStreamTopology:
        return clients.nats_topology(self.exchange)

    async def prepare(self, partitions: int) -> None:
        """The stream must exist before anything is emitted: the group's consumer creates it
        (and the group's durable, which then reads from the stream's start)."""
        from dispytch.backends.base import Subscription

        consumer = self.consumer()
        await consumer.start([Subscription.parse(self.topic, ":")])
        await consumer.close()

    def consumer(self, group: str | None = None) -> Consumer:
        self.groups.add(group or self.group)
        return clients.consumer("nats", group or self.group, self.exchange)

    def producer(self) -> Producer:
        return clients.producer("nats", self.exchange)

    def worker_args(self) -> list[str]:
        return [*super().worker_args(), "--exchange", self.exchange]

    async def _js(self) -> tuple[Client, JetStreamContext]:
        from dispytch.nats._client import connect

        client = await connect(clients.NATS_URL)
        return client, client.jetstream()

    async def dead_letters(self, count: int, timeout: float = 20.0) -> Letters:
        from dispytch.nats.headers import from_nats

        client, js = await self._js()
        stream = self.topology.dead_letter_stream
        letters: Letters = []
        try:
            deadline = time.monotonic() + timeout
            while (await js.stream_info(stream)).state.messages < count:
                assert time.monotonic() < deadline, f"fewer than {count} dead letters"
                await asyncio.sleep(0.05)
            await asyncio.sleep(NO_MORE_WAIT)
            state = (await js.stream_info(stream)).state
            assert state.messages == count, f"{state.messages} dead letters, not {count}"
            for sequence in range(max(state.first_seq, 1), state.last_seq + 1 if count else 0):
                stored = await js.get_msg(stream, sequence)
                headers, _ = from_nats(stored.headers)
                letters.append((stored.data or b"", headers))
        finally:
            await client.close()
        return letters

    async def unsettled(self, group: str | None = None) -> int:
        """Messages of the group's durables not delivered yet or not acknowledged (their
        retry copies included)."""
        client, js = await self._js()
        topology = self.topology
        name = group or self.group
        try:
            total = 0
            for stream, subject in (
                (topology.stream, self.topic),
                (topology.retry_stream, topology.retry_subject_prefix(name) + ".>"),
            ):
                info = await js.consumer_info(stream, topology.durable_name(name, subject))
                total += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            return total
        finally:
            await client.close()

    async def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            client, js = await self._js()
            topology = self.topology
            try:
                for stream in (topology.stream, topology.dead_letter_stream, topology.retry_stream):
                    with contextlib.suppress(Exception):
                        await js.delete_stream(stream)
            finally:
                await client.close()
