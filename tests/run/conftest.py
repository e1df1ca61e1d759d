"""The failure tests' fixtures (unique streams on the real brokers, measured figures)."""

from tests.failures.conftest import report, streams

__all__ = ["report", "streams"]
