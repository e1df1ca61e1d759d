"""Kafka's rules for topic names, checked before anything is sent or subscribed: a name the
broker would refuse otherwise costs a metadata wait (40 s by default) and an unclear error."""

from __future__ import annotations

import functools
import re

from dispytch.errors import InvalidTopicNameError
from dispytch.routing.patterns import Subscription

#: the broker's own limit (a topic's directory name must leave room for the partition number)
MAX_LENGTH = 249
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")
RULE = "Kafka topic names hold only letters a-z A-Z, digits, '.', '_' and '-', at most 249 of them"


#: how many valid topic names `check_topic` remembers
CHECKED_TOPICS_KEPT = 4096


@functools.lru_cache(maxsize=CHECKED_TOPICS_KEPT)
def check_topic(topic: str) -> None:
    """Raise `InvalidTopicNameError` naming the rule when Kafka cannot carry `topic`.

    Every send checks its topic: a name found valid is remembered (a bounded cache; a raise is
    never cached), so the steady state costs one lookup, not a pass over the characters."""
    problem = None
    if not topic:
        problem = "it is empty"
    elif topic in (".", ".."):
        problem = "'.' and '..' are reserved"
    elif len(topic) > MAX_LENGTH:
        problem = f"it has {len(topic)} characters"
    else:
        illegal = sorted({char for char in topic if not _LEGAL.fullmatch(char)})
        if illegal:
            problem = "it contains " + ", ".join(repr(char) for char in illegal)
    if problem is not None:
        raise InvalidTopicNameError(f"Kafka cannot carry the topic {topic!r}: {problem}. {RULE}")


def check_subscription(subscription: Subscription) -> None:
    """Raise `InvalidTopicNameError` when no topic the pattern matches could exist on Kafka
    (its literal parts or its delimiter hold a character Kafka refuses)."""
    example = subscription.delimiter.join(
        "x" if segment is None else segment for segment in subscription.segments
    )
    try:
        check_topic(example)
    except InvalidTopicNameError as error:
        raise InvalidTopicNameError(
            f"the handler topic {subscription.pattern!r} can match no Kafka topic: "
            f"{str(error).split(': ', 1)[1]}"
        ) from None
