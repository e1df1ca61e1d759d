"""`dispytch dlq` against real Redis: dead letters made by a failing listener on the Streams
backend, then listed, shown, filtered, dry-run and replayed to their original stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from .conftest import events_for, make_dead_letters, receive_replayed, unique

aioredis = pytest.importorskip("redis.asyncio")
pytestmark = pytest.mark.redis

from dispytch.redis import (  # noqa: E402
    RedisDeadLetterStore,
    RedisStreamConsumer,
    RedisStreamProducer,
)


async def _stream_length(url: str, stream: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return int(await client.xlen(stream))
    finally:
        await client.aclose()


async def _setup(url: str) -> str:
    """Three dead letters: placed (0), cancelled (1), placed (2)."""
    topic = unique("orders")
    events = events_for(topic)
    emitted = [
        events.placed(order_id="o-1"),
        events.cancelled(order_id="o-2"),
        events.placed(order_id="o-3"),
    ]
    await make_dead_letters(
        RedisStreamConsumer.create(url, "failing"),
        RedisStreamProducer.create(url),
        topic,
        emitted,
        lambda: _stream_length(url, topic + ".dlq"),
    )
    return topic


async def _delete(url: str, topic: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.delete(topic, topic + ".dlq")
    finally:
        await client.aclose()


@pytest.fixture
def topic(redis_url: str) -> Any:
    name = asyncio.run(_setup(redis_url))
    yield name
    asyncio.run(_delete(redis_url, name))


def _lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _fixed(url: str) -> RedisStreamConsumer:
    # a group that starts at the stream's end: it gets the replayed copies only
    return RedisStreamConsumer.create(url, "fixed", start_from="$")


def test_list_show_filter_dry_run_and_replay(
    redis_url: str, topic: str, dispytch: Callable[..., Result]
) -> None:
    source = ("--broker", redis_url, "--source-topic", topic)

    first = _lines(dispytch("dlq", "list", *source, "--json"))
    assert _lines(dispytch("dlq", "list", *source, "--json")) == first
    assert [(r["event_type"], r["stage"], r["error_type"], r["original_topic"]) for r in first] == [
        ("order_placed", "handler", "ValueError", topic),
        ("order_cancelled", "handler", "KeyError", topic),
        ("order_placed", "handler", "ValueError", topic),
    ]
    ids = [r["event_id"] for r in first]
    assert (
        _lines(dispytch("dlq", "list", "--broker", redis_url, "--topic", topic + ".dlq", "--json"))
        == first
    )

    shown = _lines(dispytch("dlq", "show", ids[1], *source, "--json"))[0]
    assert shown["envelope"]["body"] == {"order_id": "o-2"}
    assert shown["metadata"]["group"] == "failing"

    by_type = _lines(dispytch("dlq", "list", *source, "--json", "--event-type", "order_cancelled"))
    assert [r["event_id"] for r in by_type] == [ids[1]]

    dry = dispytch("dlq", "replay", *source, "--dry-run", "--error-type", "ValueError")
    assert dry.exit_code == 0
    assert "would replay 2 of 2" in dry.stdout
    assert _lines(dispytch("dlq", "list", *source, "--json")) == first

    asyncio.run(receive_replayed(_fixed(redis_url), topic, 0))  # the group exists before

    one = dispytch("dlq", "replay", *source, "--event-type", "order_cancelled")
    assert one.exit_code == 0, one.output + one.stderr
    assert "replayed 1 of 1" in one.stdout
    assert [r["event_id"] for r in _lines(dispytch("dlq", "list", *source, "--json"))] == [
        ids[0],
        ids[2],
    ]
    rest = dispytch("dlq", "replay", *source)
    assert rest.exit_code == 0, rest.output + rest.stderr
    assert "replayed 2 of 2" in rest.stdout

    received = asyncio.run(receive_replayed(_fixed(redis_url), topic, 3))
    assert sorted(i for i, _, _ in received) == sorted(ids)
    for _, _, headers in received:
        assert not any(name.startswith("dispytch-dlq-") for name in headers)
        assert "dispytch-attempt" not in headers
    assert _lines(dispytch("dlq", "list", *source, "--json")) == []


def test_missing_stream_exits_1(redis_url: str, dispytch: Callable[..., Result]) -> None:
    result = dispytch("dlq", "list", "--broker", redis_url, "--source-topic", unique("absent"))
    assert result.exit_code == 1
    assert "no stream" in result.stderr


def test_rabbitmq_options_are_refused(redis_url: str, dispytch: Callable[..., Result]) -> None:
    result = dispytch("dlq", "list", "--broker", redis_url, "--queue", "q")
    assert result.exit_code == 2
    assert "RabbitMQ" in result.stderr


async def test_store_reads_without_consuming(redis_url: str) -> None:
    stream = unique("letters") + ".dlq"
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.xadd(stream, {b"v": b"\xff not json", b"h": b"[not a dict"})
        async with RedisDeadLetterStore(redis_url, stream) as store:
            letters = [letter async for letter in store.read()]
            assert await store.pending() == 1
        assert len(letters) == 1
        assert letters[0].value == b"\xff not json"
        assert letters[0].headers == {}
        assert letters[0].envelope is None
        assert letters[0].envelope_error
    finally:
        await client.delete(stream)
        await client.aclose()
