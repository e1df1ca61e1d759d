"""Metric labels with bounded values, from what a listener knows rather than what the wire says.

A topic and an event type come from the broker: a wildcard subscription (`orders.{region}`) or
a topic shared with other services can carry any number of distinct names, and a label per
name would grow the metrics without bound. So a topic is labelled with the handler topic
pattern it matches, and an event type with itself only when a handler names it (or it is in
the allow list given); anything else is "other". Event ids never become labels.
"""

from __future__ import annotations

from collections.abc import Iterable

from dispytch.routing.patterns import Subscription

#: the label of a topic or event type outside the known set
OTHER = "other"
#: concrete topics remembered with their pattern (beyond that, matched each time)
CACHE_LIMIT = 1024
#: event timestamps further ahead than this (seconds; clock skew) are not believed
MAX_CLOCK_SKEW = 60.0


class Labels:
    """Maps a message's topic to a handler topic pattern and its event type to a known type."""

    def __init__(
        self, patterns: Iterable[str], delimiter: str, event_types: Iterable[str] = ()
    ) -> None:
        subscriptions = {Subscription.parse(pattern, delimiter) for pattern in patterns}
        self._literal = {sub.pattern for sub in subscriptions if sub.is_literal}
        self._wildcards = sorted(
            (sub for sub in subscriptions if not sub.is_literal), key=lambda sub: sub.pattern
        )
        #: the event types labelled as themselves
        self.event_types = frozenset(event_types) - {"*"}
        self._topics: dict[str, str] = {}

    @classmethod
    def of_listener(cls, listener: object, event_types: Iterable[str] = ()) -> Labels:
        """The labels of a listener's handlers (topics and event types), as registered now."""
        handlers = getattr(listener, "handlers", ())
        return cls(
            (spec.topic for spec in handlers),
            getattr(listener, "topic_delimiter", ":"),
            [*event_types, *(spec.event for spec in handlers)],
        )

    def topic(self, topic: str) -> str:
        """The handler topic pattern `topic` belongs to (the first in name order when several
        match), or "other"."""
        known = self._topics.get(topic)
        if known is not None:
            return known
        label = topic if topic in self._literal else OTHER
        if label is OTHER:
            for sub in self._wildcards:
                if sub.matches(topic):
                    label = sub.pattern
                    break
        if len(self._topics) < CACHE_LIMIT:
            self._topics[topic] = label
        return label

    def event_type(self, event_type: str | None) -> str:
        if event_type is None:
            return OTHER
        return event_type if event_type in self.event_types else OTHER


def event_age(timestamp_ms: object, now: float, max_age: float) -> float | None:
    """Seconds from an event's timestamp (epoch milliseconds, from the broker: untrusted) to
    `now` (epoch seconds). None for a timestamp that is not a number, is older than `max_age`
    seconds or further ahead than `MAX_CLOCK_SKEW`; a small skew ahead counts as 0."""
    if type(timestamp_ms) is not int and type(timestamp_ms) is not float:
        return None
    age = now - timestamp_ms / 1000.0
    if not -MAX_CLOCK_SKEW <= age <= max_age:  # also False for NaN
        return None
    return max(age, 0.0)
