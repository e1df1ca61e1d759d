"""NATS's rules for the subjects that topics become, checked before anything is published or
subscribed, so that a topic the server would refuse (or read as a wildcard) fails at once with
`InvalidTopicNameError` rather than as an unclear refusal from the client or the server."""

from __future__ import annotations

import functools

from dispytch.errors import InvalidTopicNameError
from dispytch.nats.topology import subject_of
from dispytch.routing.patterns import Subscription

RULE = (
    "NATS subjects are tokens separated by '.': no empty token, no whitespace, and no '*' or "
    "'>' (wildcards) in a topic"
)
#: how many valid (topic, delimiter) pairs `check_topic` remembers
CHECKED_TOPICS_KEPT = 4096


def _problem(subject: str) -> str | None:
    if not subject:
        return "it is empty"
    if any(char.isspace() for char in subject):
        return "it contains whitespace"
    if any(not token for token in subject.split(".")):
        return f"its subject {subject!r} has an empty token"
    if "*" in subject or ">" in subject:
        return "it contains a wildcard ('*' or '>')"
    return None


@functools.lru_cache(maxsize=CHECKED_TOPICS_KEPT)
def check_topic(topic: str, delimiter: str) -> None:
    """Raise `InvalidTopicNameError` naming the rule when `topic` (written with `delimiter`)
    cannot be a NATS subject. A valid pair is remembered; a raise is never cached."""
    problem = _problem(subject_of(topic, delimiter))
    if problem is not None:
        raise InvalidTopicNameError(f"NATS cannot carry the topic {topic!r}: {problem}. {RULE}")


def check_subscription(subscription: Subscription) -> None:
    """Raise `InvalidTopicNameError` when no topic the pattern matches could be a subject (its
    literal parts hold whitespace, a wildcard character or an empty token)."""
    example = subscription.delimiter.join(
        "x" if segment is None else segment for segment in subscription.segments
    )
    problem = _problem(subject_of(example, subscription.delimiter))
    if problem is not None:
        raise InvalidTopicNameError(
            f"the handler topic {subscription.pattern!r} can match no NATS subject: "
            f"{problem}. {RULE}"
        )
