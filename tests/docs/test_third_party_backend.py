"""The third-party backend of docs/backend-contract.md plugs into Dispytch without touching
the package: its module and its tests are taken from the page, it is "installed" with a
temporary `.dist-info` that registers its store in the `dispytch.dead_letter_stores` entry
point group, and then the conformance suite runs on it and `dispytch dlq` opens its store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.test_doc_examples import DOCS, python_blocks

PAGE = DOCS / "backend-contract.md"
TIMEOUT = 120.0


def _block(first_line: str) -> str:
    for _, source in python_blocks(PAGE):
        lines = source.splitlines()
        body = lines[1:] if lines and lines[0] == "# fragment" else lines
        if body and body[0].startswith(first_line):
            return "\n".join(body) + "\n"
    raise AssertionError(f"no python block starting with {first_line!r} in {PAGE.name}")


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A directory with tiny_backend.py, its tests, and its dist-info (entry point included)."""
    (tmp_path / "tiny_backend.py").write_text(_block("# tiny_backend.py"))
    (tmp_path / "test_tiny_conformance.py").write_text(_block("# test_tiny_conformance.py"))
    dist_info = tmp_path / "tiny_backend-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-backend\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[dispytch.dead_letter_stores]\ntiny = tiny_backend:open_store\n"
    )
    return tmp_path


def _run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(directory)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_the_conformance_suite_passes_on_the_third_party_backend(installed: Path) -> None:
    result = _run(
        installed, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
        "--rootdir", str(installed), "test_tiny_conformance.py",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed is not None, result.stdout
    assert int(passed.group(1)) >= 8  # the scenarios its capabilities do not skip


def test_dispytch_dlq_finds_the_store_through_the_entry_point(installed: Path) -> None:
    script = installed / "dead_letter_and_list.py"
    script.write_text(
        "import asyncio\n"
        "from dispytch.backends import OutgoingMessage\n"
        "from dispytch.cli import main\n"
        "from dispytch.deadletters import DeadLetterReason\n"
        "from tiny_backend import TinyBroker\n"
        "broker = TinyBroker('shop')\n"
        "reason = DeadLetterReason('decode', 'EnvelopeError', 'not json', 'orders')\n"
        "broker.dead_letters.append(('orders', b'oops', None, reason.to_headers()))\n"
        "main(['dlq', 'list', '--broker', 'tiny://shop', '--json'])\n"
    )
    result = _run(installed, str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"location": "orders#0"' in result.stdout, result.stdout

    refused = installed / "refused.py"
    refused.write_text(
        "from dispytch.cli import main\n"
        "import tiny_backend\n"
        "tiny_backend.TinyBroker('shop')\n"
        "main(['dlq', 'list', '--broker', 'tiny://shop', '--queue', 'q'])\n"
    )
    result = _run(installed, str(refused))
    assert result.returncode == 2
    assert "tiny:// takes --topic only" in result.stderr
