"""Runs every ```python block of docs/*.md that is not marked `# fragment`.

Each block runs as a script in its own interpreter, so examples cannot lean on each other.
Blocks in docs/backends/ need real brokers: test_backend_doc_examples.py runs them. Blocks whose
first line is `# needs: <server>` are not run here: the tests of that server run them
(docs/schemas.md: tests/schemas).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FRAGMENT_MARK = "# fragment"
NEEDS_MARK = "# needs:"
TIMEOUT = 30.0
_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(1-based number among the page's python blocks, source) for every python block."""
    text = page.read_text(encoding="utf-8")
    return [(n, match.group(1)) for n, match in enumerate(_BLOCK.finditer(text), start=1)]


def runnable_blocks() -> list[pytest.param]:  # type: ignore[valid-type]
    params = []
    for page in sorted(DOCS.glob("*.md")):
        for number, source in python_blocks(page):
            if source.lstrip().startswith((FRAGMENT_MARK, NEEDS_MARK)):
                continue
            params.append(pytest.param(source, id=f"{page.name}:{number}"))
    return params


BLOCKS = runnable_blocks()


def test_the_docs_have_runnable_examples() -> None:
    assert len(BLOCKS) >= 10, "docs/*.md should hold runnable examples"


@pytest.mark.parametrize("source", BLOCKS)
def test_doc_example_runs(source: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, (
        f"example exited with {result.returncode}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
