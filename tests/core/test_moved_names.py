"""Names that moved out of the backend contract and the dead-letter package still import from
their old places, with a DeprecationWarning that names the new one."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("dispytch.backends", "DeadLetterReason", "dispytch.reasons", None),
    ("dispytch.backends", "ATTEMPT_HEADER", "dispytch.reasons", None),
    ("dispytch.backends.base", "DeadLetterReason", "dispytch.reasons", None),
    ("dispytch.backends.base", "ATTEMPT_HEADER", "dispytch.reasons", None),
    ("dispytch.backends.base", "DLQ_HEADER_PREFIX", "dispytch.reasons", None),
    ("dispytch.deadletters", "KafkaDeadLetterStore", "dispytch.kafka", "aiokafka"),
    ("dispytch.deadletters", "RabbitMQDeadLetterStore", "dispytch.rabbitmq", "aio_pika"),
]


@pytest.mark.parametrize(("module", "name", "home", "needs"), MOVED)
def test_a_moved_name_still_imports_and_warns(
    module: str, name: str, home: str, needs: str | None
) -> None:
    if needs is not None:
        pytest.importorskip(needs)
    with pytest.warns(DeprecationWarning, match=f"{name} moved to {home}"):
        found = getattr(importlib.import_module(module), name)
    assert found is getattr(importlib.import_module(home), name)


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    for module in ("dispytch.backends", "dispytch.backends.base", "dispytch.deadletters"):
        assert not hasattr(importlib.import_module(module), "NoSuchName")
