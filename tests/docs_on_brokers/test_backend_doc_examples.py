"""Runs every ```python block of docs/backends/<backend>.md that is not a `# fragment`, on the
real broker of that page (test_doc_examples.py runs the other pages' blocks, which need none).

Only names are changed: topics and streams named in the example get a fresh suffix so that runs
do not read each other's events, and addresses are this run's when DISPYTCH_* variables say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.docs.test_doc_examples import FRAGMENT_MARK, python_blocks

from .brokers import BROKERS, require

BACKEND_DOCS = Path(__file__).resolve().parents[2] / "docs" / "backends"
QUOTED_ADDRESS = re.compile(r'"(?:127\.0\.0\.1:9092|(?:amqp|redis|nats)://[^"]*)"')
#: the first segment of a topic or stream named in an example: `__topic__ = "orders"`
NAMED = re.compile(r'((?:__topic__ = |topic=|stream=)")([A-Za-z0-9_-]+)')


def backend_blocks() -> list[pytest.param]:  # type: ignore[valid-type]
    params = []
    for page in sorted(BACKEND_DOCS.glob("*.md")):
        for number, source in python_blocks(page):
            if not source.lstrip().startswith(FRAGMENT_MARK):
                params.append(pytest.param(page.stem, source, id=f"{page.name}:{number}"))
    return params


BLOCKS = backend_blocks()


def test_every_backend_page_has_a_complete_example() -> None:
    pages_with_examples = {
        page.stem
        for page in BACKEND_DOCS.glob("*.md")
        if any(not source.lstrip().startswith(FRAGMENT_MARK) for _, source in python_blocks(page))
    }
    assert pages_with_examples == set(BROKERS), "each backend page should start with one"


@pytest.mark.parametrize(("backend", "source"), BLOCKS)
def test_backend_doc_example_runs_on_its_broker(backend: str, source: str, tmp_path: Path) -> None:
    broker = require(backend)
    suffix = uuid.uuid4().hex[:10]
    example = source
    for name in {match.group(2) for match in NAMED.finditer(source)}:
        # every quoted string starting with the name: NATS subjects ("orders.>") too
        example = example.replace(f'"{name}', f'"{name}_{suffix}')
    if broker.variable_is_set():
        example = QUOTED_ADDRESS.sub(f'"{broker.address}"', example)
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=90
        )
        assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    finally:
        if backend == "nats":  # streams outlive the run and keep their subjects to themselves
            streams = [m.group(2) for m in NAMED.finditer(example) if m.group(1) == 'stream="']
            asyncio.run(_delete_nats_streams(broker.address, streams))


async def _delete_nats_streams(url: str, streams: list[str]) -> None:
    import nats  # the nats extra: only this backend's case needs it

    client = await nats.connect(url)
    try:
        js = client.jetstream()
        for stream in streams:
            for name in (stream, f"{stream}_DLQ", f"{stream}_RETRY"):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await js.delete_stream(name)
    finally:
        await client.close()
