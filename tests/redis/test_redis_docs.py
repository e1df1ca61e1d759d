"""The python examples of docs/backends/redis.md run against the real server (tests/docs does
not run the backend pages, which need brokers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.docs.test_doc_examples import DOCS, FRAGMENT_MARK, TIMEOUT, python_blocks

pytestmark = pytest.mark.redis

PAGE = DOCS / "backends" / "redis.md"
BLOCKS = [
    source for _, source in python_blocks(PAGE) if not source.lstrip().startswith(FRAGMENT_MARK)
]
#: the keys the examples create
KEYS = ("orders", "dispytch:retry:billing")


def test_the_page_has_a_runnable_example() -> None:
    assert BLOCKS


@pytest.mark.parametrize("source", BLOCKS)
def test_doc_example_runs(source: str, redis_url: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(source.replace("redis://127.0.0.1:6379/0", redis_url), encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    finally:
        client = redis.Redis.from_url(redis_url)
        client.delete(*KEYS)
        client.close()
