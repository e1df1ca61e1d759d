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


MIDDLEWARE = [
    "CallNext",
    "EmitContext",
    "EmitMiddleware",
    "HandlerCall",
    "HandlerMiddleware",
    "KeyLock",
    "LogOutcomes",
    "MessageContext",
    "MessageMiddleware",
    "Outcome",
    "header_equals",
    "skip_unless",
]


def test_middleware_names_are_pinned() -> None:
    import dispytch.middleware

    assert dispytch.middleware.__all__ == MIDDLEWARE
    for name in MIDDLEWARE:
        assert getattr(dispytch.middleware, name) is not None, name


def test_codec_names_are_exported() -> None:
    import dispytch.serialization

    for name in ("Codec", "Encoded", "JSONCodec", "MessagePackCodec", "SerializerCodec"):
        assert name in dispytch.serialization.__all__
        assert getattr(dispytch.serialization, name) is not None, name
