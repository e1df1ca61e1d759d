"""The python examples of docs/backends/nats.md run against the real server (tests/docs does
not run the backend pages, which need brokers)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from pathlib import Path

import nats
import pytest

from tests.docs.test_doc_examples import DOCS, FRAGMENT_MARK, TIMEOUT, python_blocks

pytestmark = pytest.mark.nats

PAGE = DOCS / "backends" / "nats.md"
BLOCKS = [
    source for _, source in python_blocks(PAGE) if not source.lstrip().startswith(FRAGMENT_MARK)
]


def test_the_page_has_a_runnable_example() -> None:
    assert BLOCKS


@pytest.mark.parametrize("source", BLOCKS)
def test_doc_example_runs(source: str, nats_url: str, tmp_path: Path) -> None:
    # a stream and subjects of its own: a stream left by another run may hold orders.>
    suffix = uuid.uuid4().hex[:10]
    stream = f"ORDERS_{suffix}"
    source = source.replace("nats://127.0.0.1:4222", nats_url).replace('"ORDERS"', f'"{stream}"')
    source = source.replace('"orders.', f'"orders_{suffix}.').replace(
        '"orders:', f'"orders_{suffix}:'
    )
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    finally:
        asyncio.run(_delete_streams(nats_url, [stream, f"{stream}_DLQ", f"{stream}_RETRY"]))


async def _delete_streams(url: str, streams: list[str]) -> None:
    client = await nats.connect(url)
    js = client.jetstream()
    for stream in streams:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
    await client.close()
