"""Where the NATS backend keeps things: stream names, subjects and durable consumer names.

One stream (`stream`, default `DISPYTCH`) holds the events of the subjects it is configured
with. Two streams of the backend's own sit beside it: `<stream>_DLQ` holds dead letters on
`dispytch-dlq.<stream>.<topic>` (limits retention: kept until replayed or purged) and
`<stream>_RETRY` holds delayed-retry copies on `dispytch-retry.<stream>.<group>.<topic>`
(work-queue retention: a copy is gone once acked). A listener group is one durable pull
consumer per subscribed subject, named `<group>_<hash of the subject>`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dispytch.backends.base import Capabilities, Subscription

NATS_CAPABILITIES = Capabilities(
    persistent=True,
    # members of a group share a subject without key affinity; one member keeps key order
    ordered_per_key=False,
    consumer_groups=True,
    redelivers_on_nack=True,
    native_delay=True,
    # the server's default max_payload; a server configured otherwise refuses by its own
    max_message_bytes=1024 * 1024,
)

DEFAULT_STREAM = "DISPYTCH"
#: characters JetStream refuses in stream and durable names
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_-]")


def _safe_token(text: str) -> str:
    """`text` usable as one subject token / in a durable name, stable and collision-free."""
    safe = _NOT_IN_NAMES.sub("_", text)
    if safe != text:
        safe += "_" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return safe


@dataclass(frozen=True)
class JetStreamTopology:
    """The streams a consumer or producer uses.

    `subjects`: the subjects the event stream holds (wildcards allowed, `orders.>`). When given,
    the stream is created with them if missing, and an existing stream must hold exactly them
    (a clear error otherwise). When `None`, the stream must exist already.
    """

    stream: str = DEFAULT_STREAM
    subjects: tuple[str, ...] | None = ("dispytch.>",)

    def __post_init__(self) -> None:
        if not self.stream or _NOT_IN_NAMES.search(self.stream):
            raise ValueError(
                f"stream name {self.stream!r} must be letters, digits, '_' or '-' only"
            )

    @property
    def dead_letter_stream(self) -> str:
        return f"{self.stream}_DLQ"

    @property
    def dead_letter_prefix(self) -> str:
        return f"dispytch-dlq.{self.stream}"

    def dead_letter_subject(self, topic: str) -> str:
        return f"{self.dead_letter_prefix}.{topic}"

    @property
    def retry_stream(self) -> str:
        return f"{self.stream}_RETRY"

    @property
    def retry_prefix(self) -> str:
        return f"dispytch-retry.{self.stream}"

    def retry_subject_prefix(self, group: str) -> str:
        return f"{self.retry_prefix}.{_safe_token(group)}"

    def durable_name(self, group: str, subject: str) -> str:
        digest = hashlib.sha1(subject.encode()).hexdigest()[:10]
        return f"{_safe_token(group)}_{digest}"


def subject_of(topic: str, delimiter: str) -> str:
    """The subject of a topic: the delimiter becomes `.` (a `.` in a topic stays one)."""
    return topic if delimiter == "." else topic.replace(delimiter, ".")


def topic_of(subject: str, subscription: Subscription) -> str | None:
    """The topic, in the subscription's delimiter, that `subject_of` turned into `subject`,
    or None when the subject is not one of the subscription's. A literal segment may hold
    dots (several tokens); a wildcard is one token."""
    if subscription.delimiter == ".":
        return subject if subscription.matches(subject) else None
    tokens = subject.split(".")
    parts: list[str] = []
    index = 0
    for segment in subscription.segments:
        width = 1 if segment is None else len(segment.split("."))
        parts.append(".".join(tokens[index : index + width]))
        index += width
    if index != len(tokens):
        return None
    topic = subscription.delimiter.join(parts)
    return topic if subscription.matches(topic) else None
