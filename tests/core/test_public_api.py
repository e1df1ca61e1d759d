"""The public API: pinned, so that a name is never added or dropped by accident."""

import importlib

import dispytch

PUBLIC = [
    "Dependency",
    "Event",
    "EventBase",
    "EventEmitter",
    "EventListener",
    "ExponentialBackoff",
    "FixedBackoff",
    "HandlerGroup",
    "InMemoryBroker",
    "RetryPolicy",
    "TopicSegment",
]


def test_all_is_pinned() -> None:
    assert dispytch.__all__ == PUBLIC


def test_every_public_name_imports() -> None:
    module = importlib.import_module("dispytch")
    for name in PUBLIC:
        assert getattr(module, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from dispytch import *", namespace)
    assert set(PUBLIC) <= set(namespace)

