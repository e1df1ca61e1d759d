"""Runs the examples of docs/security.md that need the secured brokers (tests/docs skips them:
they are marked `# fragment: runs against the secured brokers`), each as a script in its own
interpreter, with the environment `scripts/brokers env` gives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from yarl import URL

from tests.docs.test_doc_examples import python_blocks

from .conftest import Listener

pytestmark = pytest.mark.secure

PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
MARK = "# fragment: runs against the secured brokers"
BLOCKS = [source for _, source in python_blocks(PAGE) if source.startswith(MARK)]
KAFKA, RABBITMQ = (
    next(source for source in BLOCKS if f"dispytch.{name}" in source)
    for name in ("kafka", "rabbitmq")
)


def test_the_page_has_one_example_per_backend() -> None:
    assert len(BLOCKS) == 2


def run(source: str, tmp_path: Path, listener: Listener, variables: dict[str, str]) -> str:
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    environment = {**os.environ, "DISPYTCH_BROKERS_CA_FILE": listener.ca_file, **variables}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert listener.password not in result.stdout + result.stderr
    return result.stdout


def test_the_kafka_example_runs(kafka_sasl_ssl: Listener, tmp_path: Path) -> None:
    variables = {
        "DISPYTCH_KAFKA_SASL_SSL_BOOTSTRAP": kafka_sasl_ssl.address,
        "DISPYTCH_KAFKA_SASL_USERNAME": kafka_sasl_ssl.username,
        "DISPYTCH_KAFKA_SASL_PASSWORD": kafka_sasl_ssl.password,
    }
    assert run(KAFKA, tmp_path, kafka_sasl_ssl, variables) == "paid: inv-1\n"


def test_the_rabbitmq_example_runs(rabbitmq_tls: Listener, tmp_path: Path) -> None:
    try:
        variables = {
            "DISPYTCH_RABBITMQ_TLS_URL": f"amqps://{rabbitmq_tls.address}/",
            "DISPYTCH_RABBITMQ_TLS_USERNAME": rabbitmq_tls.username,
            "DISPYTCH_RABBITMQ_TLS_PASSWORD": rabbitmq_tls.password,
        }
        assert run(RABBITMQ, tmp_path, rabbitmq_tls, variables) == "paid: inv-1\n"
    finally:
        asyncio.run(_delete_example_topology(rabbitmq_tls))


async def _delete_example_topology(listener: Listener) -> None:
    import aio_pika

    url = URL.build(
        scheme="amqps",
        user=listener.username,
        password=listener.password,
        host=listener.host,
        port=listener.port,
        path="/",
    )
    connection = await aio_pika.connect(str(url), ssl_context=listener.context())
    try:
        for queue in ("docs-security.billing", "docs-security.dlq"):
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(queue)
        for exchange in ("docs-security", "docs-security.dlx"):
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.exchange_delete(exchange)
    finally:
        await connection.close()
