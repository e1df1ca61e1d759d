"""`KafkaEventConfig` and the subscription plan, without a broker."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from dispytch.backends.base import Subscription
from dispytch.kafka import KafkaEventConfig
from dispytch.kafka._subscribe import plan_subscription


def test_partition_key_accepts_str_bytes_and_numbers() -> None:
    assert KafkaEventConfig(partition_key="user-1").key_bytes() == b"user-1"
    assert KafkaEventConfig(partition_key=b"\x00\x01").key_bytes() == b"\x00\x01"
    assert KafkaEventConfig(partition_key=42).key_bytes() == b"42"
    assert KafkaEventConfig().key_bytes() is None


def test_headers_accept_what_users_pass() -> None:
    config = KafkaEventConfig(headers={"a": "1", "b": b"two", "c": 3})
    assert config.headers == {"a": "1", "b": "two", "c": "3"}
    assert KafkaEventConfig(headers=[("x", b"y")]).headers == {"x": "y"}
    assert KafkaEventConfig(headers=None).headers == {}


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValidationError):
        KafkaEventConfig(partition=-1)
    with pytest.raises(ValidationError):
        KafkaEventConfig(partition_kye="typo")


def subs(*patterns: str, delimiter: str = ".") -> list[Subscription]:
    return [Subscription.parse(p, delimiter) for p in patterns]


def test_literal_subscriptions_become_topics() -> None:
    plan = plan_subscription(subs("b", "a", "a"), None, None, ".dlq")
    assert plan.topics == ("a", "b")
    assert plan.pattern is None


def test_explicit_topics_or_pattern_win() -> None:
    assert plan_subscription(subs("a"), ["x"], None, ".dlq").topics == ("x",)
    assert plan_subscription(subs("a"), None, "x.*", ".dlq").pattern == "x.*"


def test_wildcards_combine_into_one_pattern_that_skips_dead_letter_topics() -> None:
    plan = plan_subscription(subs("orders:{region}", "audit", delimiter=":"), None, None, ".dlq")
    assert plan.pattern is not None
    pattern = re.compile(plan.pattern)
    assert pattern.match("orders:eu")
    assert pattern.match("audit")
    assert not pattern.match("orders:eu.dlq")
    assert not pattern.match("orders:eu:x")
    assert not pattern.match("audit2")
    assert not pattern.match("payments:eu")
