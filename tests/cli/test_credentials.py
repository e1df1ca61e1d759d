"""Credentials never appear in what the tooling prints or logs, nor in errors and reprs.

The CLI runs as the operator runs it (a subprocess), and every failing invocation's whole
output, stdout and stderr with the log lines the clients write, is searched for the password:
an unsupported scheme, a URL that does not parse, an unreachable host, TLS against a plain
port, and a wrong password on the real RabbitMQ (which accepts guest/guest only).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from dispytch.credentials import MASK, masked, masked_options, masked_url, url_secrets
from dispytch.deadletters import StoreUsageError, open_store
from dispytch.errors import BrokerAuthenticationError
from dispytch.kafka import KafkaConsumer, KafkaDeadLetterStore, KafkaProducer
from dispytch.rabbitmq import RabbitMQConsumer, RabbitMQDeadLetterStore, RabbitMQProducer

PASSWORD = "S3cr3t-Pw0rd"
#: percent-encoded in URLs; shown decoded it would read "Odd@Pa/ss9"
ENCODED = "Odd%40Pa%2Fss9"
DECODED = "Odd@Pa/ss9"
_CLI = "import sys; from dispytch.cli import main; main(sys.argv[1:])"


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _leaks(text: str) -> list[str]:
    return [secret for secret in (PASSWORD, ENCODED, DECODED, "Pa/ss9") if secret in text]


def _host_port(rabbitmq_url: str) -> str:
    parts = urlsplit(rabbitmq_url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}"


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [
        (["list", "--broker", f"amqp+tls://svc:{PASSWORD}@rabbit.example"], 2),
        (["show", "0", "--broker", f"amqps://svc:{PASSWORD}@rabbit.example:notaport/"], 2),
        # a kafka:// URL may carry the SASL login (issue 18); this listener has no SASL
        (["list", "--broker", f"kafka://svc:{PASSWORD}@127.0.0.1:9092", "--topic", "t"], 1),
        (["list", "--broker", f"redis://:{ENCODED}@127.0.0.1:6379/0"], 2),
        (["list", "--broker", f"amqp://svc:{PASSWORD}@127.0.0.1:1/"], 1),
        (["replay", "--broker", f"amqp://svc:{ENCODED}@127.0.0.1:1/", "--dry-run"], 1),
    ],
)
def test_failing_invocations_never_print_the_password(command: list[str], exit_code: int) -> None:
    result = _run_cli("dlq", *command)
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, output
    assert _leaks(output) == [], output
    assert "Traceback" not in output
    if "://" in output:
        assert MASK in output  # the URL is shown, masked


@pytest.mark.parametrize("password", [PASSWORD, ENCODED])
def test_a_wrong_password_on_the_real_rabbitmq_is_not_printed(
    rabbitmq_url: str, password: str
) -> None:
    url = f"amqp://guest:{password}@{_host_port(rabbitmq_url)}/"
    for command in (["list"], ["show", "0"], ["replay", "--dry-run"]):
        result = _run_cli("dlq", *command, "--broker", url, "--queue", "any.dlq")
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "ACCESS_REFUSED" in output or "auth" in output.lower(), output
        assert _leaks(output) == [], output


def test_tls_against_a_plain_port_is_not_printed_with_the_password(rabbitmq_url: str) -> None:
    url = f"amqps://guest:{PASSWORD}@{_host_port(rabbitmq_url)}/"
    result = _run_cli("dlq", "list", "--broker", url)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert _leaks(output) == [], output


def test_the_library_masks_errors_logs_and_reprs(
    rabbitmq_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What a program sees: errors from open_store and from starting the RabbitMQ clients
    with a wrong password, every log record (any logger, any level), and the reprs."""
    caplog.set_level(logging.DEBUG)
    wrong = f"amqp://guest:{PASSWORD}@{_host_port(rabbitmq_url)}/"
    seen: list[str] = []
    for url in (f"amqp+tls://svc:{PASSWORD}@host", f"amqp://svc:{PASSWORD}@host:port/"):
        with pytest.raises(StoreUsageError) as refused:
            open_store(url)
        seen.append(str(refused.value))

    async def start_all() -> None:
        producer = RabbitMQProducer.create(wrong, connect_timeout=10)
        consumer = RabbitMQConsumer.create(wrong, "g", connect_timeout=10)
        store = RabbitMQDeadLetterStore(wrong, connect_timeout=10)
        seen.extend(repr(thing) for thing in (producer, consumer, store))
        for start in (producer.start(), consumer.start([]), store.pending()):
            with pytest.raises(BrokerAuthenticationError) as failed:  # issue 18
                await start
            seen.append(str(failed.value))
            seen.append(repr(failed.value))
        await consumer.close()
        await store.close()

    asyncio.run(start_all())
    options = {"sasl_plain_username": "svc", "sasl_plain_password": PASSWORD}
    seen += [
        repr(KafkaConsumer.create("127.0.0.1:9092", "g", **options)),
        repr(KafkaProducer.create("127.0.0.1:9092", **options)),
        repr(KafkaDeadLetterStore("127.0.0.1:9092", "t.dlq", **options)),
    ]
    seen += [record.getMessage() for record in caplog.records]
    seen += [caplog.text]
    leaked = [text for text in seen if _leaks(text)]
    assert leaked == []
    assert any("guest:******@" in text for text in seen)


def test_masking() -> None:
    assert masked_url(f"amqp://svc:{PASSWORD}@host/vh") == f"amqp://svc:{MASK}@host/vh"
    assert masked_url("amqp://u:p@ss/w@host:5672/") == f"amqp://u:{MASK}@host:5672/"
    assert masked_url("kafka://a:9092,b:9092") == "kafka://a:9092,b:9092"
    assert masked_url("amqp://guest@host/") == "amqp://guest@host/"
    assert masked_url(f"amqps://h/?password={PASSWORD}&heartbeat=5") == (
        f"amqps://h/?password={MASK}&heartbeat=5"
    )
    assert url_secrets(f"amqp://u:{ENCODED}@h/") == (ENCODED, DECODED)
    assert masked(f"login failed: {DECODED}", url_secrets(f"amqp://u:{ENCODED}@h/")) == (
        f"login failed: {MASK}"
    )
    assert masked_options({"sasl_plain_password": PASSWORD, "sasl_plain_username": "svc"}) == {
        "sasl_plain_password": MASK,
        "sasl_plain_username": "svc",
    }
