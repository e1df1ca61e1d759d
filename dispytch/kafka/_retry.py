"""Delayed retries through a retry topic of the consumer group.

`retry_later` stores a copy of the record in the group's retry topic with two more headers:
the topic it came from and when it is due (epoch milliseconds). The consumer reads the retry
topic along with its handler topics. A retry record that is not due yet is not handed out:
its partition is paused, positioned back on it, and resumed by a timer when it is due. Other
partitions (every handler topic, and the other retry partitions) go on meanwhile.

Records of one retry partition are held back in order: a record that is due sooner waits
behind one produced before it that is due later (see docs/backends/kafka.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors

from dispytch.kafka._offsets import PartitionKey
from dispytch.kafka.config import header_bytes

log = logging.getLogger("dispytch.kafka")

RETRY_TOPIC_HEADER = "dispytch-retry-topic"
RETRY_AT_HEADER = "dispytch-retry-at"
RETRY_HEADERS = frozenset({RETRY_TOPIC_HEADER, RETRY_AT_HEADER})
DEFAULT_RETRY_SUFFIX = ".retry"

_SEEK_ERRORS = (kafka_errors.IllegalStateError, ValueError, AssertionError)


def retry_headers(
    headers: Mapping[str, str],
    raw: Sequence[tuple[str, bytes | None]],
    original_topic: str,
    delay: float,
) -> list[tuple[str, bytes]]:
    """The headers of a retry record: `headers` (the raw bytes where a header is unchanged, so
    values that are not UTF-8 survive), the original topic and the due time."""
    raw_by_name = {name: value for name, value in raw}
    encoded: list[tuple[str, bytes]] = []
    for name, text in headers.items():
        if name in RETRY_HEADERS:
            continue
        stored = raw_by_name.get(name)
        if stored is not None and stored.decode("utf-8", "replace") == text:
            encoded.append((name, stored))
        else:
            encoded.append((name, header_bytes(text)))
    due_ms = int(time.time() * 1000 + delay * 1000)
    encoded.append((RETRY_TOPIC_HEADER, header_bytes(original_topic)))
    encoded.append((RETRY_AT_HEADER, str(due_ms).encode()))
    return encoded


def due_at(record: Any) -> int | None:
    """When a retry record is due (epoch ms); None when it has no valid due time."""
    for name, value in record.headers or ():
        if name == RETRY_AT_HEADER and value:
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RetryScheduler:
    """Holds back the records of retry partitions that are not due yet."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._client: AIOKafkaConsumer | None = None
        self._timers: dict[PartitionKey, asyncio.TimerHandle] = {}

    def attach(self, client: AIOKafkaConsumer) -> None:
        self._client = client

    def first_not_due(self, tp: TopicPartition, records: list[Any]) -> int | None:
        """The index of the first record just fetched from `tp` that is not due yet (None:
        all may be handed out now). The records from there on wait: see `hold`."""
        if tp.topic != self.topic:
            return None
        now_ms = time.time() * 1000
        for index, record in enumerate(records):
            due = due_at(record)
            if due is not None and due > now_ms:
                return index
        return None

    def hold(self, tp: TopicPartition, record: Any) -> None:
        """Pause `tp` on `record`, which is not due, until it is."""
        due = due_at(record) or 0
        self._hold(tp, record.offset, max(0.0, (due - time.time() * 1000) / 1000))

    def release(self, tp: TopicPartition) -> None:
        """Resume `tp` now (its timer, if any, is cancelled): it is read again and held back
        once more at the first record that is still not due."""
        timer = self._timers.pop((tp.topic, tp.partition), None)
        if timer is None:
            return
        timer.cancel()
        self._resume(tp)

    def forget(self, keys: Iterable[PartitionKey] | None = None) -> None:
        """The partitions went away (revoked, closed): their timers are dropped."""
        for key in list(self._timers) if keys is None else keys:
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()

    def _hold(self, tp: TopicPartition, offset: int, wait: float) -> None:
        client = self._client
        assert client is not None
        key = (tp.topic, tp.partition)
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        try:
            client.pause(tp)
            client.seek(tp, offset)
        except _SEEK_ERRORS as exc:
            # the partition was revoked meanwhile; its next owner reads it from the commit
            log.debug("cannot hold %s[%s] back: %s", tp.topic, tp.partition, exc)
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(wait, self._due, tp)

    def _due(self, tp: TopicPartition) -> None:
        self._timers.pop((tp.topic, tp.partition), None)
        self._resume(tp)

    def _resume(self, tp: TopicPartition) -> None:
        client = self._client
        if client is None:
            return
        with contextlib.suppress(*_SEEK_ERRORS):
            client.resume(tp)
