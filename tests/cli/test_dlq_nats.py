"""`dispytch dlq` against a real NATS JetStream server: dead letters made by a failing
listener, then listed, shown, filtered, dry-run and replayed to their original topic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import Result

from dispytch.nats import JetStreamTopology, NatsConsumer, NatsDeadLetterStore, NatsProducer
from dispytch.nats._client import connect

from .conftest import _require, events_for, make_dead_letters, receive_replayed

pytestmark = pytest.mark.nats

NATS = os.environ.get("DISPYTCH_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def nats_url() -> str:
    parts = urlsplit(NATS)
    _require("NATS", parts.hostname or "127.0.0.1", parts.port or 4222)
    return NATS


async def _pending(url: str, stream: str) -> int:
    try:
        async with NatsDeadLetterStore(url, stream) as store:
            return await store.pending()
    except Exception:
        return 0


async def _setup(url: str, topology: JetStreamTopology, topic: str) -> list[str]:
    """Three dead letters: placed (0), cancelled (1), placed (2)."""
    events = events_for(topic)
    emitted = [
        events.placed(order_id="o-1"),
        events.cancelled(order_id="o-2"),
        events.placed(order_id="o-3"),
    ]
    await make_dead_letters(
        NatsConsumer(url, "failing", topology=topology),
        NatsProducer(url),
        topic,
        emitted,
        lambda: _pending(url, topology.stream),
    )
    return [str(e) for e in emitted]


async def _delete(url: str, topology: JetStreamTopology) -> None:
    client = await connect(url)
    try:
        js = client.jetstream()
        for stream in (topology.stream, topology.dead_letter_stream, topology.retry_stream):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
    finally:
        await client.close()


@pytest.fixture
def setup(nats_url: str) -> Any:
    token = uuid.uuid4().hex[:10]
    topology = JetStreamTopology(stream=f"DLQCLI_{token}", subjects=(f"dlqcli{token}.>",))
    topic = f"dlqcli{token}.orders"
    asyncio.run(_setup(nats_url, topology, topic))
    yield topology, topic
    asyncio.run(_delete(nats_url, topology))


def _lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_list_show_filter_dry_run_and_replay(
    nats_url: str, setup: tuple[JetStreamTopology, str], dispytch: Callable[..., Result]
) -> None:
    topology, topic = setup
    source = ("--broker", f"{nats_url.rstrip('/')}/{topology.stream}")

    first = _lines(dispytch("dlq", "list", *source, "--json"))
    assert _lines(dispytch("dlq", "list", *source, "--json")) == first  # nothing consumed
    assert sorted(
        (r["event_type"], r["stage"], r["error_type"], r["original_topic"]) for r in first
    ) == sorted(
        [
            ("order_placed", "handler", "ValueError", topic),
            ("order_cancelled", "handler", "KeyError", topic),
            ("order_placed", "handler", "ValueError", topic),
        ]
    )
    ids = [r["event_id"] for r in first]
    cancelled = [r["event_id"] for r in first if r["event_type"] == "order_cancelled"]

    shown = _lines(dispytch("dlq", "show", cancelled[0], *source, "--json"))[0]
    assert shown["envelope"]["body"] == {"order_id": "o-2"}

    by_type = _lines(dispytch("dlq", "list", *source, "--json", "--event-type", "order_cancelled"))
    assert [r["event_id"] for r in by_type] == cancelled
    assert _lines(dispytch("dlq", "list", *source, "--json", "--source-topic", "other")) == []

    dry = dispytch("dlq", "replay", *source, "--dry-run", "--error-type", "ValueError")
    assert dry.exit_code == 0
    assert "would replay 2 of 2" in dry.stdout
    assert _lines(dispytch("dlq", "list", *source, "--json")) == first

    one = dispytch("dlq", "replay", *source, "--event-type", "order_cancelled")
    assert one.exit_code == 0, one.output + one.stderr
    assert "replayed 1 of 1" in one.stdout
    left = [r["event_id"] for r in _lines(dispytch("dlq", "list", *source, "--json"))]
    assert sorted(left) == sorted(i for i in ids if i not in cancelled)
    rest = dispytch("dlq", "replay", *source)
    assert rest.exit_code == 0, rest.output + rest.stderr
    assert "replayed 2 of 2" in rest.stdout

    fixed = NatsConsumer(nats_url, "fixed", topology=topology)
    # a new group reads the stream from its start: the three originals, then the replays
    received = asyncio.run(receive_replayed(fixed, topic, 6))
    assert sorted(i for i, _, _ in received) == sorted(ids * 2)
    for _, _, headers in received:
        assert not any(name.startswith("dispytch-dlq-") for name in headers)
        assert "dispytch-attempt" not in headers
    assert _lines(dispytch("dlq", "list", *source, "--json")) == []


def test_missing_stream_exits_1(nats_url: str, dispytch: Callable[..., Result]) -> None:
    stream = f"ABSENT_{uuid.uuid4().hex[:8]}"
    result = dispytch("dlq", "list", "--broker", f"{nats_url.rstrip('/')}/{stream}")
    assert result.exit_code == 1
    assert "no stream" in result.stderr


def test_kafka_options_are_refused(nats_url: str, dispytch: Callable[..., Result]) -> None:
    result = dispytch("dlq", "list", "--broker", nats_url, "--topic", "x")
    assert result.exit_code == 2
