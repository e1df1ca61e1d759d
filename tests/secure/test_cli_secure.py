"""`dispytch dlq` against the secured listeners: list, show and replay over Kafka SASL_SSL and
RabbitMQ amqps, the password from a file or the environment (never on the command line), the
TLS files from options; failures name their cause and never show the password."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from click.testing import CliRunner, Result

from dispytch.cli._app import cli
from dispytch.kafka import KafkaConsumer, KafkaDeadLetterStore, KafkaProducer
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQDeadLetterStore, RabbitMQProducer
from dispytch.rabbitmq.topology import Topology
from tests.cli.conftest import events_for, make_dead_letters, unique

from .conftest import CLIENT_CERT_FILE, CLIENT_KEY_FILE, Listener, forwarder_to
from .test_kafka_secure import sasl_ssl
from .test_rabbitmq_secure import amqps_url

aio_pika = pytest.importorskip("aio_pika")
pytestmark = pytest.mark.secure

Run = Callable[..., Result]


@pytest.fixture
def dispytch(monkeypatch: pytest.MonkeyPatch) -> Run:
    """`dispytch ...` in-process; no DISPYTCH_BROKER_* variable leaks in from outside."""
    for name in (
        "DISPYTCH_BROKER_URL",
        "DISPYTCH_BROKER_USERNAME",
        "DISPYTCH_BROKER_PASSWORD",
        "DISPYTCH_BROKER_PASSWORD_FILE",
        "DISPYTCH_BROKER_CA_FILE",
        "DISPYTCH_BROKER_CERT_FILE",
        "DISPYTCH_BROKER_KEY_FILE",
        "DISPYTCH_BROKER_SASL_MECHANISM",
    ):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, catch_exceptions=False)

    return invoke


def password_file(tmp_path: Path, password: str) -> str:
    path = tmp_path / "password"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def nowhere(password: str, result: Result) -> None:
    assert password not in result.stdout
    assert password not in result.stderr


# -- Kafka ---------------------------------------------------------------------------------


async def _kafka_dead_letters(listener: Listener) -> str:
    """Three dead letters on a new topic's `.dlq`, made over SASL_SSL; the topic's name."""
    options = sasl_ssl(listener)
    topic = unique("securecli")
    admin = AIOKafkaAdminClient(bootstrap_servers=listener.address, **options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in (topic, topic + ".dlq")])
    finally:
        await admin.close()
    events = events_for(topic)

    async def count() -> int:
        async with KafkaDeadLetterStore(listener.address, topic + ".dlq", **options) as store:
            return await store.pending()

    await make_dead_letters(
        KafkaConsumer.create(listener.address, unique("failing"), **options),
        KafkaProducer.create(listener.address, **options),
        topic,
        [
            events.placed(order_id="o-1"),
            events.cancelled(order_id="o-2"),
            events.placed(order_id="o-3"),
        ],
        count,
    )
    return topic


def test_dlq_list_show_and_replay_over_kafka_sasl_ssl(
    kafka_sasl_ssl: Listener, dispytch: Run, tmp_path: Path
) -> None:
    listener = kafka_sasl_ssl
    topic = asyncio.run(_kafka_dead_letters(listener))
    source = ["--broker", f"kafka+ssl://{listener.address}", "--topic", topic + ".dlq"]
    login = ["--username", listener.username, "--ca-file", listener.ca_file]
    from_file = ["--password-file", password_file(tmp_path, listener.password)]

    listed = dispytch("dlq", "list", *source, *login, *from_file, "--json")
    letters = json_lines(listed)
    assert [letter["event_type"] for letter in letters] == [
        "order_placed",
        "order_cancelled",
        "order_placed",
    ]
    nowhere(listener.password, listed)

    # the user in the URL, the password and the CA file from the environment
    env = {
        "DISPYTCH_BROKER_PASSWORD": listener.password,
        "DISPYTCH_BROKER_CA_FILE": listener.ca_file,
    }
    url = f"kafka+ssl://{listener.username}@{listener.address}"
    shown = dispytch(
        "dlq", "show", "1", "--broker", url, "--topic", topic + ".dlq", "--json", env=env
    )
    (letter,) = json_lines(shown)
    assert letter["event_type"] == "order_cancelled"
    nowhere(listener.password, shown)

    # everything in the URL works too (the password percent-encoded), and is not shown
    in_url = (
        f"kafka+ssl://{listener.username}:{quote(listener.password, safe='')}@{listener.address}"
    )
    dry_run = dispytch(
        "dlq", "replay", "--dry-run", "--broker", in_url, "--topic", topic + ".dlq",
        "--ca-file", listener.ca_file,
    )  # fmt: skip
    assert dry_run.exit_code == 0, dry_run.output + dry_run.stderr
    assert "would replay 3 of 3" in dry_run.stdout
    nowhere(listener.password, dry_run)

    replayed = dispytch("dlq", "replay", *source, *login, *from_file)
    assert replayed.exit_code == 0, replayed.output + replayed.stderr
    assert "replayed 3 of 3" in replayed.stdout
    nowhere(listener.password, replayed)
    assert json_lines(dispytch("dlq", "list", *source, *login, *from_file, "--json")) == []


def test_dlq_over_kafka_fails_naming_the_cause(
    kafka_sasl_ssl: Listener, other_ca: str, dispytch: Run, tmp_path: Path
) -> None:
    listener = kafka_sasl_ssl
    wrong = f"wrong-{secrets.token_hex(8)}"
    source = ["--broker", f"kafka+ssl://{listener.address}", "--topic", "secure-never.dlq"]
    user = ["--username", listener.username]

    refused = dispytch(
        "dlq", "list", *source, *user, "--ca-file", listener.ca_file,
        "--password-file", password_file(tmp_path, wrong),
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "authentication failed" in refused.stderr
    nowhere(wrong, refused)

    env = {"DISPYTCH_BROKER_PASSWORD": listener.password}
    untrusted = dispytch("dlq", "list", *source, *user, "--ca-file", other_ca, env=env)
    assert untrusted.exit_code == 1
    assert "certificate not trusted" in untrusted.stderr
    nowhere(listener.password, untrusted)

    with forwarder_to(listener) as other_address:
        elsewhere = [
            "--broker", f"kafka+ssl://{other_address.address}", "--topic", "secure-never.dlq",
        ]  # fmt: skip
        mismatch = dispytch(
            "dlq", "list", *elsewhere, *user, "--ca-file", listener.ca_file, env=env
        )
    assert mismatch.exit_code == 1
    assert "hostname mismatch" in mismatch.stderr
    nowhere(listener.password, mismatch)


def test_tls_files_need_a_tls_url(dispytch: Run, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read", encoding="utf-8")
    for url in ("kafka://127.0.0.1:9092", "amqp://guest@127.0.0.1:5672/"):
        result = dispytch("dlq", "list", "--broker", url, "--topic", "t.dlq", "--ca-file", str(ca))
        assert result.exit_code == 2
        assert "--ca-file" in result.stderr or "TLS" in result.stderr


def test_a_password_file_must_hold_a_password(dispytch: Run, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    url = "kafka+ssl://dispytch@127.0.0.1:9094"
    result = dispytch(
        "dlq", "list", "--broker", url, "--topic", "t.dlq", "--password-file", str(empty)
    )
    assert result.exit_code == 2
    assert "is empty" in result.stderr
    missing = dispytch(
        "dlq", "list", "--broker", url, "--topic", "t.dlq",
        "--password-file", str(tmp_path / "missing"),
    )  # fmt: skip
    assert missing.exit_code == 2
    assert "cannot read --password-file" in missing.stderr


def test_a_key_file_needs_a_certificate(dispytch: Run, tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("not read", encoding="utf-8")
    url = "amqps://dispytch@127.0.0.1:5671/"
    result = dispytch("dlq", "list", "--broker", url, "--key-file", str(key))
    assert result.exit_code == 2
    assert "--key-file needs --cert-file" in result.stderr


# -- RabbitMQ ------------------------------------------------------------------------------


async def _rabbitmq_dead_letters(listener: Listener, topology: Topology) -> None:
    url, context = amqps_url(listener), listener.context()

    async def count() -> int:
        async with RabbitMQDeadLetterStore(
            url, topology.dead_letter_queue, ssl_context=context
        ) as store:
            return await store.pending()

    topic = unique("orders")
    events = events_for(topic)
    await make_dead_letters(
        RabbitMQConsumer.create(url, "failing", exchange=topology.exchange, ssl_context=context),
        RabbitMQProducer.create(
            url, exchange=topology.exchange, topic_delimiter=".", ssl_context=context
        ),
        topic,
        [events.placed(order_id="o-1"), events.cancelled(order_id="o-2")],
        count,
    )


async def _delete(listener: Listener, topology: Topology) -> None:
    connection = await aio_pika.connect(amqps_url(listener), ssl_context=listener.context())
    try:
        for queue in (topology.dead_letter_queue, topology.queue("failing")):
            channel = await connection.channel()
            try:
                await channel.queue_delete(queue)
            except aio_pika.exceptions.AMQPError:
                continue
        for exchange in (topology.exchange, topology.dead_letter_exchange):
            channel = await connection.channel()
            try:
                await channel.exchange_delete(exchange)
            except aio_pika.exceptions.AMQPError:
                continue
    finally:
        await connection.close()


@pytest.fixture
def rabbitmq_letters(rabbitmq_tls: Listener) -> Any:
    topology = Topology(unique("securecli"))
    asyncio.run(_rabbitmq_dead_letters(rabbitmq_tls, topology))
    yield topology
    asyncio.run(_delete(rabbitmq_tls, topology))


def test_dlq_list_show_and_replay_over_amqps(
    rabbitmq_tls: Listener, rabbitmq_letters: Topology, dispytch: Run, tmp_path: Path
) -> None:
    listener, topology = rabbitmq_tls, rabbitmq_letters
    url = f"amqps://{listener.username}@{listener.address}/"
    source = ["--broker", url, "--queue", topology.dead_letter_queue]
    tls = ["--ca-file", listener.ca_file]
    from_file = ["--password-file", password_file(tmp_path, listener.password)]

    listed = dispytch("dlq", "list", *source, *tls, *from_file, "--json")
    assert [letter["event_type"] for letter in json_lines(listed)] == [
        "order_placed",
        "order_cancelled",
    ]
    nowhere(listener.password, listed)

    env = {"DISPYTCH_BROKER_PASSWORD": listener.password}
    shown = dispytch("dlq", "show", "0", *source, *tls, "--json", env=env)
    (letter,) = json_lines(shown)
    assert letter["event_type"] == "order_placed"
    nowhere(listener.password, shown)

    replayed = dispytch("dlq", "replay", *source, *tls, *from_file)
    assert replayed.exit_code == 0, replayed.output + replayed.stderr
    assert "replayed 2 of 2" in replayed.stdout
    nowhere(listener.password, replayed)
    assert json_lines(dispytch("dlq", "list", *source, *tls, *from_file, "--json")) == []


def test_dlq_over_amqps_fails_naming_the_cause(
    rabbitmq_tls: Listener, other_ca: str, dispytch: Run, tmp_path: Path
) -> None:
    listener = rabbitmq_tls
    wrong = f"wrong-{secrets.token_hex(8)}"
    url = f"amqps://{listener.username}@{listener.address}/"

    refused = dispytch(
        "dlq", "list", "--broker", url, "--ca-file", listener.ca_file,
        "--password-file", password_file(tmp_path, wrong),
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "authentication failed" in refused.stderr
    nowhere(wrong, refused)

    env = {"DISPYTCH_BROKER_PASSWORD": listener.password}
    untrusted = dispytch("dlq", "list", "--broker", url, "--ca-file", other_ca, env=env)
    assert untrusted.exit_code == 1
    assert "certificate not trusted" in untrusted.stderr
    nowhere(listener.password, untrusted)

    with forwarder_to(listener) as other_address:
        elsewhere = f"amqps://{listener.username}@{other_address.address}/"
        mismatch = dispytch(
            "dlq", "list", "--broker", elsewhere, "--ca-file", listener.ca_file, env=env
        )
    assert mismatch.exit_code == 1
    assert "hostname mismatch" in mismatch.stderr
    nowhere(listener.password, mismatch)


@pytest.fixture(scope="session")
def foreign_client_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed client certificate and key: not signed by the brokers' CA."""
    folder = tmp_path_factory.mktemp("foreign-client")
    cert, key = folder / "client.pem", folder / "client.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=stranger", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_the_client_certificate_options_are_used(
    rabbitmq_tls: Listener, foreign_client_certificate: tuple[str, str], dispytch: Run
) -> None:
    """The amqps listener verifies a client certificate when one is given: the brokers' own
    is accepted, a stranger's is refused (so --cert-file and --key-file are used)."""
    if not (CLIENT_CERT_FILE and Path(CLIENT_CERT_FILE).is_file()):
        pytest.fail("no client certificate at DISPYTCH_BROKERS_CLIENT_CERT_FILE")
    listener = rabbitmq_tls
    url = f"amqps://{listener.username}@{listener.address}/"
    env = {
        "DISPYTCH_BROKER_PASSWORD": listener.password,
        "DISPYTCH_BROKER_CA_FILE": listener.ca_file,
    }
    queue = ["--queue", f"secure-{secrets.token_hex(4)}.dlq"]  # missing: exit 1 once connected

    ours = dispytch(
        "dlq", "list", "--broker", url, *queue,
        "--cert-file", CLIENT_CERT_FILE, "--key-file", CLIENT_KEY_FILE, env=env,
    )  # fmt: skip
    assert ours.exit_code == 1
    assert "has no queue" in ours.stderr

    cert, key = foreign_client_certificate
    stranger = dispytch(
        "dlq", "list", "--broker", url, *queue, "--cert-file", cert, "--key-file", key, env=env
    )
    assert stranger.exit_code == 1
    assert "has no queue" not in stranger.stderr  # it never got that far
    # With TLS 1.3 the client finishes its handshake before the broker judges its certificate:
    # the refusal arrives either as a TLS alert or as a reset connection.
    assert "client certificate refused" in stranger.stderr or "reset" in stranger.stderr


def test_open_store_takes_the_kafka_login_from_the_arguments_then_the_url() -> None:
    from dispytch.deadletters import open_store

    store = open_store("kafka+ssl://svc:s%40cret@broker:9094", topic="t.dlq")
    assert isinstance(store, KafkaDeadLetterStore)
    options = store._options
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "s@cret")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "s@cret" not in repr(store)

    given = open_store("kafka://svc:from-url@broker:9092", topic="t.dlq", password="given")
    assert isinstance(given, KafkaDeadLetterStore)
    assert given._options["security_protocol"] == "SASL_PLAINTEXT"
    assert given._options["sasl_plain_password"] == "given"

    plain = open_store("kafka+ssl://broker:9093", topic="t.dlq")
    assert isinstance(plain, KafkaDeadLetterStore)
    assert plain._options["security_protocol"] == "SSL"
