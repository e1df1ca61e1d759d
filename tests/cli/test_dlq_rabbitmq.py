"""`dispytch dlq` against real RabbitMQ: dead letters made by a failing listener, then listed,
shown, filtered, dry-run and replayed through the exchange to their original topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQDeadLetterStore, RabbitMQProducer
from dispytch.rabbitmq.topology import Topology

from .conftest import events_for, make_dead_letters, receive_replayed, unique

aio_pika = pytest.importorskip("aio_pika")
pytestmark = pytest.mark.rabbitmq


async def _queue_size(url: str, queue: str) -> int:
    async with RabbitMQDeadLetterStore(url, queue) as store:
        return await store.pending()


async def _setup(url: str, topology: Topology) -> tuple[str, list[str]]:
    """Three dead letters: placed (0), cancelled (1), placed (2)."""
    topic = unique("orders")
    events = events_for(topic)
    emitted = [
        events.placed(order_id="o-1"),
        events.cancelled(order_id="o-2"),
        events.placed(order_id="o-3"),
    ]
    await make_dead_letters(
        RabbitMQConsumer.create(url, "failing", exchange=topology.exchange),
        RabbitMQProducer.create(url, exchange=topology.exchange, topic_delimiter="."),
        topic,
        emitted,
        lambda: _queue_size(url, topology.dead_letter_queue),
    )
    return topic, [str(e) for e in emitted]


async def _delete(url: str, topology: Topology, groups: list[str]) -> None:
    connection = await aio_pika.connect(url)
    try:
        for queue in [topology.dead_letter_queue, *(topology.queue(g) for g in groups)]:
            channel = await connection.channel()
            try:
                await channel.queue_delete(queue)
                await channel.close()
            except aio_pika.exceptions.AMQPError:
                pass
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            channel = await connection.channel()
            try:
                await channel.exchange_delete(exchange)
                await channel.close()
            except aio_pika.exceptions.AMQPError:
                pass
    finally:
        await connection.close()


@pytest.fixture
def setup(rabbitmq_url: str) -> Any:
    topology = Topology(unique("dlqcli"))
    topic, _ = asyncio.run(_setup(rabbitmq_url, topology))
    yield topology, topic
    asyncio.run(_delete(rabbitmq_url, topology, ["failing", "fixed"]))


def _lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_list_show_filter_dry_run_and_replay(
    rabbitmq_url: str, setup: tuple[Topology, str], dispytch: Callable[..., Result]
) -> None:
    topology, topic = setup
    source = ("--broker", rabbitmq_url, "--queue", topology.dead_letter_queue)

    first = _lines(dispytch("dlq", "list", *source, "--json"))
    second = _lines(dispytch("dlq", "list", *source, "--json"))
    assert first == second  # listing leaves the queue as it was, in order
    assert [(r["event_type"], r["stage"], r["error_type"], r["original_topic"]) for r in first] == [
        ("order_placed", "handler", "ValueError", topic),
        ("order_cancelled", "handler", "KeyError", topic),
        ("order_placed", "handler", "ValueError", topic),
    ]
    assert first[2]["error"] == "no stock for o-3"
    ids = [r["event_id"] for r in first]

    table = dispytch("dlq", "list", *source)
    assert table.exit_code == 0
    assert len(table.stdout.splitlines()) == 4

    shown = _lines(dispytch("dlq", "show", ids[1], *source, "--json"))[0]
    assert shown["envelope"]["body"] == {"order_id": "o-2"}
    assert shown["metadata"]["group"] == topology.queue("failing")
    text = dispytch("dlq", "show", "2", *source)
    assert text.exit_code == 0
    assert '"order_id": "o-3"' in text.stdout

    by_type = _lines(dispytch("dlq", "list", *source, "--json", "--event-type", "order_cancelled"))
    assert [r["event_id"] for r in by_type] == [ids[1]]
    by_topic = _lines(dispytch("dlq", "list", *source, "--json", "--source-topic", "other"))
    assert by_topic == []
    by_text = _lines(dispytch("dlq", "list", *source, "--json", "--error-contains", "o-1"))
    assert [r["event_id"] for r in by_text] == [ids[0]]

    dry = dispytch("dlq", "replay", *source, "--dry-run", "--error-type", "ValueError")
    assert dry.exit_code == 0
    assert "would replay 2 of 2" in dry.stdout
    assert _lines(dispytch("dlq", "list", *source, "--json")) == first

    # a group with a working handler: its queue and bindings exist before the replay
    asyncio.run(receive_replayed(_fixed(rabbitmq_url, topology), topic, 0))

    one = dispytch("dlq", "replay", *source, "--event-type", "order_cancelled")
    assert one.exit_code == 0, one.output + one.stderr
    assert "replayed 1 of 1" in one.stdout
    assert [r["event_id"] for r in _lines(dispytch("dlq", "list", *source, "--json"))] == [
        ids[0],
        ids[2],
    ]
    rest = dispytch("dlq", "replay", *source, "--progress")
    assert rest.exit_code == 0, rest.output + rest.stderr
    assert "replayed 2 of 2" in rest.stdout
    assert "replaying" in rest.stderr  # the progress bar, forced on a non-terminal stderr

    received = asyncio.run(receive_replayed(_fixed(rabbitmq_url, topology), topic, 3))
    assert sorted(i for i, _, _ in received) == sorted(ids)
    for _, _, headers in received:
        assert not any(name.startswith("dispytch-dlq-") for name in headers)
        assert "dispytch-attempt" not in headers

    again = dispytch("dlq", "replay", *source)
    assert again.exit_code == 0
    assert "replayed 0 of 0" in again.stdout
    assert _lines(dispytch("dlq", "list", *source, "--json")) == []


def _fixed(url: str, topology: Topology) -> RabbitMQConsumer:
    return RabbitMQConsumer.create(url, "fixed", exchange=topology.exchange)


def test_missing_queue_exits_1(rabbitmq_url: str, dispytch: Callable[..., Result]) -> None:
    result = dispytch("dlq", "list", "--broker", rabbitmq_url, "--queue", unique("absent"))
    assert result.exit_code == 1
    assert "no queue" in result.stderr


def test_group_filter_and_column_tell_services_apart(
    rabbitmq_url: str, setup: tuple[Topology, str], dispytch: Callable[..., Result]
) -> None:
    """Every group of an exchange shares one dead-letter queue: `--group` keeps one service's
    letters, and the table and JSON name each letter's group."""
    topology, topic = setup
    other_topic = unique("invoices")

    async def billing_letters() -> int:
        return await _queue_size(rabbitmq_url, topology.dead_letter_queue) - 3

    asyncio.run(
        make_dead_letters(
            RabbitMQConsumer.create(rabbitmq_url, "billing", exchange=topology.exchange),
            RabbitMQProducer.create(rabbitmq_url, exchange=topology.exchange, topic_delimiter="."),
            other_topic,
            [events_for(other_topic).placed(order_id="b-1")],
            billing_letters,
        )
    )
    try:
        source = ("--broker", rabbitmq_url, "--queue", topology.dead_letter_queue)
        rows = _lines(dispytch("dlq", "list", *source, "--json"))
        assert sorted(r["group"] for r in rows) == ["billing", "failing", "failing", "failing"]

        billing = _lines(dispytch("dlq", "list", *source, "--json", "--group", "billing"))
        assert [r["original_topic"] for r in billing] == [other_topic]
        by_queue = dispytch("dlq", "list", *source, "--json", "--group", topology.queue("failing"))
        assert {r["original_topic"] for r in _lines(by_queue)} == {topic}
        dry = dispytch("dlq", "replay", *source, "--dry-run", "--group", "billing")
        assert "would replay 1 of 1" in dry.stdout

        table = dispytch("dlq", "list", *source, "--group", "billing").stdout.splitlines()
        assert table[0].split()[:5] == ["index", "event", "id", "event", "type"]
        assert "group" in table[0]
        assert "billing" in table[1]
        assert "failing" not in "\n".join(table)
    finally:
        asyncio.run(_delete(rabbitmq_url, topology, ["billing"]))
