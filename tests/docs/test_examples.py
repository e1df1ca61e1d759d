"""Runs the demo service in examples/ as a user would and checks what it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_user_service_demo_runs_and_reports_what_it_handled() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "user_service.py")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    expected = [
        "handled user_registered: saved user 1 <ada@example.com>",
        "handled user_registered: saved user 2 <grace@example.com>",
        "  db: committed ['ada@example.com']",
        "  db: committed ['grace@example.com']",
        "welcome mail to ada@example.com failed on attempt 1: mail server busy",
        "handled user_registered: welcome mail sent to ada@example.com on attempt 2",
        "handled user_registered: welcome mail sent to grace@example.com on attempt 1",
        "handled order_placed: user 1 ordered 2 x book (topic users:1:orders)",
        "dead letter from users:2:orders: stage=validation error=ValidationError "
        "handler=record_order (1 validation error for Order quantity "
        "Input should be greater than 0)",
        "done: 2 users saved, every message settled",
    ]
    missing = [line for line in expected if line not in lines]
    assert not missing, f"missing lines: {missing}\n--- stdout\n{result.stdout}"
    assert not any("lamp" in line for line in lines if line.startswith("handled")), (
        "the invalid order must not be handled"
    )
    assert lines[-1] == "done: 2 users saved, every message settled"
