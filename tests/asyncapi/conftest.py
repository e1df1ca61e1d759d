"""The official AsyncAPI parser (npm `@asyncapi/parser`, installed into tests/asyncapi/node by
scripts/setup-asyncapi-parser), run on generated documents. Without node and npm the tests
skip, and fail under CI=true."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).parent / "node"
SETUP = Path(__file__).parents[2] / "scripts" / "setup-asyncapi-parser"

Validate = Callable[[Path], dict[str, Any]]


def _missing(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="session")
def asyncapi_parser() -> Callable[[Path], subprocess.CompletedProcess[str]]:
    """Runs the parser on a file; the completed process (stdout: diagnostics as JSON)."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        _missing("node and npm are needed to validate AsyncAPI documents with @asyncapi/parser")
    setup = subprocess.run([str(SETUP)], capture_output=True, text=True, timeout=600)
    if setup.returncode != 0 or not (NODE_DIR / "node_modules" / "@asyncapi" / "parser").exists():
        _missing(f"could not install @asyncapi/parser:\n{setup.stdout}\n{setup.stderr}")

    def run(document: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(node), "validate.mjs", str(document)],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
        )

    return run


@pytest.fixture(scope="session")
def validate(asyncapi_parser: Callable[[Path], subprocess.CompletedProcess[str]]) -> Validate:
    """Parses a document; fails the test on any parser error; the parser's summary."""

    def check(document: Path) -> dict[str, Any]:
        result = asyncapi_parser(document)
        assert result.returncode == 0, (
            f"@asyncapi/parser rejected {document.name}:\n{result.stdout}\n{result.stderr}"
        )
        report = json.loads(result.stdout)
        assert not report["errors"]
        return report  # type: ignore[no-any-return]

    return check
