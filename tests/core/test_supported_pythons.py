"""pyproject.toml names the supported Pythons in several places, which must agree: the classifiers
(which scripts/pythons reads to choose the versions CI tests), requires-python, and the versions
mypy and ruff check the code for."""

import re
from pathlib import Path

PYPROJECT = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")


def setting(pattern: str) -> str:
    match = re.search(pattern, PYPROJECT, re.MULTILINE)
    assert match is not None, f"pyproject.toml has no line matching {pattern!r}"
    return match.group(1)


def test_classifiers_name_every_version_from_the_oldest_supported_one_without_a_gap() -> None:
    minors = sorted(
        int(minor)
        for minor in re.findall(
            r'^\s*"Programming Language :: Python :: 3\.(\d+)",', PYPROJECT, re.M
        )
    )
    assert minors, "no 'Programming Language :: Python :: 3.X' classifier"
    oldest = int(setting(r'^requires-python = ">=3\.(\d+)"$'))
    assert minors == list(range(oldest, minors[-1] + 1))
    assert minors[-1] >= 13
    assert setting(r'^python_version = "3\.(\d+)"$') == str(oldest)  # mypy
    assert setting(r'^target-version = "py3(\d+)"$') == str(oldest)  # ruff
