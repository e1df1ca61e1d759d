"""Runs the python blocks of docs/schemas.md that need the schema registry (`# needs:
schema-registry`), each in its own interpreter, against the real registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.test_doc_examples import DOCS, NEEDS_MARK, TIMEOUT, python_blocks

NEEDS_REGISTRY = f"{NEEDS_MARK} schema-registry"
BLOCKS = [
    pytest.param(source, id=f"schemas.md:{number}")
    for number, source in python_blocks(DOCS / "schemas.md")
    if source.lstrip().startswith(NEEDS_REGISTRY)
]


def test_the_page_has_examples_that_need_the_registry() -> None:
    assert BLOCKS


@pytest.mark.parametrize("source", BLOCKS)
def test_doc_example_runs_against_the_registry(
    source: str, registry_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "DISPYTCH_SCHEMA_REGISTRY_URL": registry_url},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
