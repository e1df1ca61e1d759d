"""`dispytch dlq` against real Kafka: dead letters made by a failing listener, then listed,
shown, filtered, dry-run and replayed to their original topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from click.testing import Result

from dispytch.kafka import KafkaConsumer, KafkaDeadLetterStore, KafkaProducer

from .conftest import events_for, make_dead_letters, receive_replayed, unique

pytestmark = pytest.mark.kafka


async def _create_topics(servers: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def _dead_letter_count(servers: str, dlq: str) -> int:
    async with KafkaDeadLetterStore(servers, dlq) as store:
        return await store.pending()


async def _setup(servers: str) -> tuple[str, list[Any]]:
    """A topic with three dead letters: placed (0), cancelled (1), placed (2)."""
    topic = unique("dlqcli")
    await _create_topics(servers, topic, topic + ".dlq")
    events = events_for(topic)
    emitted = [
        events.placed(order_id="o-1"),
        events.cancelled(order_id="o-2"),
        events.placed(order_id="o-3"),
    ]
    await make_dead_letters(
        KafkaConsumer.create(servers, unique("failing")),
        KafkaProducer.create(servers),
        topic,
        emitted,
        lambda: _dead_letter_count(servers, topic + ".dlq"),
    )
    return topic, emitted


def _lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def dead_letters(kafka_servers: str) -> tuple[str, list[Any]]:
    return asyncio.run(_setup(kafka_servers))


def test_list_shows_the_reasons_and_does_not_consume(
    kafka_servers: str, dead_letters: tuple[str, list[Any]], dispytch: Callable[..., Result]
) -> None:
    topic, _ = dead_letters
    broker = f"kafka://{kafka_servers}"
    first = _lines(dispytch("dlq", "list", "--broker", broker, "--source-topic", topic, "--json"))
    second = _lines(
        dispytch("dlq", "list", "--broker", broker, "--topic", topic + ".dlq", "--json")
    )
    assert first == second
    assert len({row["event_id"] for row in first}) == 3
    assert [(r["event_type"], r["stage"], r["error_type"], r["attempts"]) for r in first] == [
        ("order_placed", "handler", "ValueError", 1),
        ("order_cancelled", "handler", "KeyError", 1),
        ("order_placed", "handler", "ValueError", 1),
    ]
    assert first[0]["error"] == "no stock for o-1"
    assert first[0]["original_topic"] == topic
    assert first[0]["handler"].endswith("place")
    assert [r["index"] for r in first] == [0, 1, 2]

    table = dispytch("dlq", "list", "--broker", broker, "--source-topic", topic)
    assert table.exit_code == 0
    header, *rows = table.stdout.splitlines()
    assert header.split()[:4] == ["index", "event", "id", "event"]
    assert len(rows) == 3
    assert "no stock for o-1" in rows[0]


def test_show_prints_one_letter_in_full(
    kafka_servers: str, dead_letters: tuple[str, list[Any]], dispytch: Callable[..., Result]
) -> None:
    topic, _ = dead_letters
    broker = f"kafka://{kafka_servers}"
    rows = _lines(dispytch("dlq", "list", "--broker", broker, "--source-topic", topic, "--json"))
    by_index = dispytch("dlq", "show", "1", "--broker", broker, "--source-topic", topic)
    assert by_index.exit_code == 0, by_index.output
    assert '"order_id": "o-2"' in by_index.stdout
    assert "dispytch-dlq-error-type: KeyError" in by_index.stdout
    by_id = dispytch(
        "dlq", "show", rows[1]["event_id"], "--broker", broker, "--source-topic", topic, "--json"
    )
    shown = _lines(by_id)[0]
    assert shown["envelope"]["body"] == {"order_id": "o-2"}
    assert shown["headers"]["dispytch-dlq-original-topic"] == topic
    missing = dispytch("dlq", "show", "no-such-id", "--broker", broker, "--source-topic", topic)
    assert missing.exit_code == 1


def test_filters_dry_run_and_replay(
    kafka_servers: str, dead_letters: tuple[str, list[Any]], dispytch: Callable[..., Result]
) -> None:
    topic, _ = dead_letters
    broker = f"kafka://{kafka_servers}"
    source = ("--broker", broker, "--source-topic", topic)
    listed = _lines(dispytch("dlq", "list", *source, "--json"))
    ids = [row["event_id"] for row in listed]

    by_type = _lines(dispytch("dlq", "list", *source, "--json", "--event-type", "order_cancelled"))
    assert [r["event_id"] for r in by_type] == [ids[1]]
    by_error = _lines(dispytch("dlq", "list", *source, "--json", "--error-type", "ValueError"))
    assert [r["event_id"] for r in by_error] == [ids[0], ids[2]]
    by_text = _lines(
        dispytch("dlq", "list", *source, "--json", "--error-contains", "STOCK FOR O-3")
    )
    assert [r["event_id"] for r in by_text] == [ids[2]]

    dry = dispytch("dlq", "replay", *source, "--dry-run", "--json")
    assert [r["event_id"] for r in _lines(dry)] == ids
    assert "would replay 3" in dry.stderr
    assert _lines(dispytch("dlq", "list", *source, "--json")) == listed  # nothing changed

    # a filtered replay of the middle letter: the others stay listed
    one = dispytch("dlq", "replay", *source, "--event-type", "order_cancelled", "--progress")
    assert one.exit_code == 0, one.output + one.stderr
    assert "replayed 1 of 1" in one.stdout
    assert "replaying" in one.stderr  # the progress bar, forced on a non-terminal stderr
    assert [r["event_id"] for r in _lines(dispytch("dlq", "list", *source, "--json"))] == [
        ids[0],
        ids[2],
    ]
    everything = _lines(dispytch("dlq", "list", *source, "--json", "--all"))
    assert [r["replayed"] for r in everything] == [False, True, False]

    rest = dispytch("dlq", "replay", *source)
    assert rest.exit_code == 0, rest.output + rest.stderr
    assert "replayed 2 of 2" in rest.stdout
    again = dispytch("dlq", "replay", *source)
    assert again.exit_code == 0
    assert "replayed 0 of 0" in again.stdout
    assert _lines(dispytch("dlq", "list", *source, "--json")) == []

    # the original topic got the three events back, with the original ids and clean headers
    received = asyncio.run(
        receive_replayed(KafkaConsumer.create(kafka_servers, unique("fixed")), topic, 6)
    )
    replays = received[3:] if len(received) > 3 else received
    assert sorted(i for i, _, _ in received) == sorted(ids + ids)  # originals, then replays
    for _, _, headers in replays:
        assert not any(name.startswith("dispytch-dlq-") for name in headers)
        assert "dispytch-attempt" not in headers


def test_usage_errors_exit_2_and_a_missing_topic_exits_1(
    kafka_servers: str, dispytch: Callable[..., Result]
) -> None:
    broker = f"kafka://{kafka_servers}"
    assert dispytch("dlq", "list", "--broker", broker).exit_code == 2
    assert dispytch("dlq", "list", "--broker", "nats://x", "--topic", "t").exit_code == 2
    missing = dispytch("dlq", "list", "--broker", broker, "--topic", unique("absent"))
    assert missing.exit_code == 1
    assert "no topic" in missing.stderr


def test_a_wildcard_handler_dead_letters_into_one_topic_the_cli_finds(
    kafka_servers: str, dispytch: Callable[..., Result]
) -> None:
    """`orders.{customer_id}` dead-letters `orders.1` and `orders.2` into `orders.dlq`, which
    `--source-topic orders` (or the pattern itself) reads; a wrong name lists what exists."""
    stem = unique("orders").replace("-", "_")
    pattern = stem + ".{customer_id}"
    one, two = f"{stem}.1", f"{stem}.2"
    asyncio.run(_create_topics(kafka_servers, one, two, stem + ".dlq"))
    asyncio.run(
        make_dead_letters(
            KafkaConsumer.create(kafka_servers, unique("failing")),
            KafkaProducer.create(kafka_servers),
            pattern,
            [events_for(one).placed(order_id="o-1"), events_for(two).placed(order_id="o-2")],
            lambda: _dead_letter_count(kafka_servers, stem + ".dlq"),
        )
    )
    broker = f"kafka://{kafka_servers}"
    for source in (stem, pattern, stem + ".*"):
        listed = dispytch("dlq", "list", "--broker", broker, "--source-topic", source, "--json")
        rows = _lines(listed)
        assert sorted(r["original_topic"] for r in rows) == [one, two]

    missing = dispytch("dlq", "list", "--broker", broker, "--source-topic", one)
    assert missing.exit_code == 1
    assert f"'{one}.dlq'" in missing.stderr
    assert f"{stem}.dlq" in missing.stderr.split("dead-letter topics are:", 1)[1]
