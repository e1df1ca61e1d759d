"""`dispytch dlq` on real brokers, with dead letters a hostile or broken producer made.

A listener dead-letters envelopes whose timestamp is not finite (`1e999`, `Infinity`) at the
decode stage, and a handler fails on an event whose type, error text and headers carry
terminal escape sequences. Someone also writes a letter straight into the dead-letter
destination, with reason headers that are not what Dispytch writes. Every command must go on
through the whole queue, show each letter (the broken ones with their decode error), escape
control characters in its human output and keep `--json` exact.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from click.testing import Result

from dispytch import Event, EventListener
from dispytch.backends.base import Consumer, OutgoingMessage, Producer
from dispytch.deadletters import DeadLetterStore
from dispytch.kafka import KafkaConsumer, KafkaDeadLetterStore, KafkaProducer
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQDeadLetterStore, RabbitMQProducer
from dispytch.rabbitmq.topology import Topology

from .conftest import eventually, unique

#: an event type, error text and header that try to clear, retitle and recolour the terminal,
#: return the carriage, ring, send a one-byte CSI and reverse the text
EVIL = "\x1b[2J\x1b]0;owned\x07\r\x9b31m\u202e"
EVIL_TYPE = f"order{EVIL}placed"
EVIL_ERROR = f"no stock{EVIL}\nsecond line\x1b[1A"
EVIL_HEADERS = {f"x-evil{EVIL}": f"value{EVIL}"}
#: a letter written straight into the dead-letter destination
FORGED_HEADERS = {
    "dispytch-dlq-stage": f"handler{EVIL}",
    "dispytch-dlq-error-type": f"Forged{EVIL}",
    "dispytch-dlq-error": f"forged{EVIL}",
    "dispytch-dlq-original-topic": f"elsewhere{EVIL}",
    "dispytch-dlq-attempts": "lots",
}
_UNSAFE = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}


def _envelope(timestamp: str) -> bytes:
    return (
        f'{{"id": "{uuid.uuid4()}", "type": "order_placed", "body": {{}}, '
        f'"timestamp": {timestamp}}}'
    ).encode()


async def _make_letters(
    consumer: Consumer,
    producer: Producer,
    forge: Callable[[bytes, dict[str, str]], Awaitable[None]],
    topic: str,
    store: Callable[[], DeadLetterStore],
    delimiter: str,
) -> None:
    listener = EventListener(consumer, topic_delimiter=delimiter)

    @listener.handler(topic=topic, event="order_placed")
    async def placed(event: Event) -> None:
        pass  # never reached: both envelopes fail to decode

    @listener.handler(topic=topic, event=EVIL_TYPE)
    async def evil(event: Event) -> None:
        raise ValueError(EVIL_ERROR)

    evil_event = json.dumps({"id": "evil-1", "type": EVIL_TYPE, "body": {"note": EVIL}})
    await producer.start()
    async with listener:
        for value in (_envelope("1e999"), _envelope("Infinity")):
            await producer.send(OutgoingMessage(topic=topic, value=value, key=None, headers={}))
        await producer.send(
            OutgoingMessage(
                topic=topic, value=evil_event.encode(), key=EVIL.encode(), headers=EVIL_HEADERS
            )
        )

        async def count() -> int | None:
            async with store() as opened:
                return 3 if await opened.pending() >= 3 else None

        await eventually(count)
    await forge(b"\x1b[2J not json", FORGED_HEADERS)
    await producer.close()


def _unsafe(text: str) -> list[str]:
    return [c for c in text if c != "\n" and unicodedata.category(c) in _UNSAFE]


def _check_every_command(dispytch: Callable[..., Result], source: list[str]) -> None:
    listed = dispytch("dlq", "list", *source, "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 4
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_stage.setdefault(row["stage"], []).append(row)
    assert len(by_stage["decode"]) == 2
    evil = by_stage["handler"][0]
    assert (evil["event_type"], evil["error"]) == (EVIL_TYPE, EVIL_ERROR)  # --json is exact
    assert by_stage[f"handler{EVIL}"][0]["attempts"] == 1
    assert by_stage[f"handler{EVIL}"][0]["original_topic"] == f"elsewhere{EVIL}"

    outputs = [listed.stdout]
    table = dispytch("dlq", "list", *source)
    assert table.exit_code == 0, table.output
    assert len(table.stdout.splitlines()) == 5
    outputs.append(table.stdout)
    for row in rows:
        shown = dispytch("dlq", "show", str(row["index"]), *source)
        assert shown.exit_code == 0, shown.output
        outputs.append(shown.stdout)
        if row["stage"] == "decode":
            assert "not an envelope: EnvelopeError" in shown.stdout
            assert "timestamp" in shown.stdout
        full = dispytch("dlq", "show", str(row["index"]), *source, "--json")
        assert full.exit_code == 0, full.output
        outputs.append(full.stdout)
        letter = json.loads(full.stdout)
        if row["index"] == evil["index"]:
            assert letter["headers"][f"x-evil{EVIL}"] == f"value{EVIL}"
            assert letter["envelope"]["body"] == {"note": EVIL}
    dry_run = dispytch("dlq", "replay", *source, "--dry-run")
    assert dry_run.exit_code == 0, dry_run.output
    outputs += [dry_run.stdout, dry_run.stderr]
    for output in outputs:
        assert _unsafe(output) == [], output
    assert "\\x1b[2J\\x1b]0;owned\\x07\\x0d\\x9b31m\\u202e" in "".join(outputs)


@pytest.mark.kafka
def test_kafka_hostile_and_broken_letters(
    kafka_servers: str, dispytch: Callable[..., Result]
) -> None:
    topic = unique("hostile")

    async def forge(value: bytes, headers: dict[str, str]) -> None:
        producer = KafkaProducer.create(kafka_servers)
        await producer.start()
        try:
            await producer.send(OutgoingMessage(topic=f"{topic}.dlq", value=value, headers=headers))
        finally:
            await producer.close()

    async def setup() -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_servers)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(n, num_partitions=1, replication_factor=1)
                    for n in (topic, topic + ".dlq")
                ]
            )
        finally:
            await admin.close()
        await _make_letters(
            KafkaConsumer.create(kafka_servers, unique("failing")),
            KafkaProducer.create(kafka_servers),
            forge,
            topic,
            lambda: KafkaDeadLetterStore(kafka_servers, topic + ".dlq"),
            ".",
        )

    asyncio.run(setup())
    _check_every_command(
        dispytch, ["--broker", f"kafka://{kafka_servers}", "--source-topic", topic]
    )


@pytest.mark.rabbitmq
def test_rabbitmq_hostile_and_broken_letters(
    rabbitmq_url: str, dispytch: Callable[..., Result]
) -> None:
    topology = Topology(unique("hostile"))
    topic = unique("orders")
    dead_letters = topology.dead_letter_queue

    async def forge(value: bytes, headers: dict[str, str]) -> None:
        import aio_pika

        connection = await aio_pika.connect(rabbitmq_url)
        try:
            channel = await connection.channel()
            message = aio_pika.Message(value, headers=dict(headers))
            # the default exchange routes by queue name: straight into the dead-letter queue
            await channel.default_exchange.publish(message, routing_key=dead_letters)
        finally:
            await connection.close()

    async def setup() -> None:
        await _make_letters(
            RabbitMQConsumer.create(rabbitmq_url, "failing", exchange=topology.exchange),
            RabbitMQProducer.create(rabbitmq_url, exchange=topology.exchange, topic_delimiter="."),
            forge,
            topic,
            lambda: RabbitMQDeadLetterStore(rabbitmq_url, dead_letters),
            ".",
        )

    async def teardown() -> None:
        import aio_pika

        connection = await aio_pika.connect(rabbitmq_url)
        try:
            channel = await connection.channel()
            for queue in (dead_letters, topology.queue("failing")):
                await channel.queue_delete(queue)
            for exchange in (topology.exchange, topology.dead_letter_exchange):
                await channel.exchange_delete(exchange)
        finally:
            await connection.close()

    asyncio.run(setup())
    try:
        _check_every_command(dispytch, ["--broker", rabbitmq_url, "--queue", dead_letters])
    finally:
        asyncio.run(teardown())
