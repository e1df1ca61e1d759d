"""Ctrl-C twice (issue 16, item 8): the second signal forces a quick, tidy exit: status 130,
a clear log line, no traceback, no unclosed client. Run in a real process."""

from __future__ import annotations

from .forced_exit_worker import interrupt_twice


async def test_a_second_sigint_forces_a_tidy_exit() -> None:
    status, log = await interrupt_twice(["memory"])
    assert status == 130, log
    assert "received SIGINT again: forcing the exit" in log
    assert "forced exit: cancelling 1 running handler(s) now" in log
    assert "Traceback" not in log
    assert "KeyboardInterrupt" not in log
    assert "Unclosed" not in log
