"""`open_store()`: a `DeadLetterStore` from a broker URL, as the CLI takes it.

The store is found by the URL's scheme in a table that any installed package can join: the
entry point group `dispytch.dead_letter_stores`, where each entry is named after a scheme and
points at a `StoreOpener`. Dispytch registers its own backends there too (`kafka`, `amqp`,
`amqps`, in its pyproject.toml), so a third-party backend is one folder plus one line::

    [project.entry-points."dispytch.dead_letter_stores"]
    redis = "dispytch_redis.dead_letters:open_store"

`register_store_opener()` adds an entry for the running process only (tests, programs that
embed the CLI).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

from dispytch.credentials import masked_url
from dispytch.deadletters.store import DeadLetterStore

ENTRY_POINT_GROUP = "dispytch.dead_letter_stores"


class StoreUsageError(ValueError):
    """The URL and options do not name a dead-letter destination."""


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """What the caller named besides the URL (the CLI's options). An opener uses those that
    mean something on its broker and refuses the others with `refuse()`."""

    #: the dead-letter destination itself (a Kafka topic)
    topic: str | None = None
    #: the topic whose dead letters to read; on a broker with one destination for every
    #: topic, the store reads them all and the caller filters (`holds_every_topic`)
    source_topic: str | None = None
    #: a dead-letter queue (RabbitMQ)
    queue: str | None = None
    #: where replays go, when the broker publishes to an exchange (RabbitMQ)
    exchange: str | None = None
    #: the consumer group recording replay progress (Kafka)
    replay_group: str | None = None
    #: replace the URL's user name and password (from a file or the environment: no password
    #: needs to sit in a URL, nor in the shell's history)
    username: str | None = None
    password: str | None = None
    #: TLS settings, for a URL whose scheme says TLS
    ssl_context: ssl.SSLContext | None = None
    #: the SASL mechanism (Kafka; SCRAM-SHA-512 when a user name is given)
    sasl_mechanism: str | None = None

    def refuse(self, *names: str, because: str) -> None:
        """Raise `StoreUsageError(because)` when any option in `names` is given."""
        if any(getattr(self, name) is not None for name in names):
            raise StoreUsageError(because)


#: builds the store of a URL (its scheme is one the opener was registered for); raises
#: `StoreUsageError` for options or URLs it cannot use
StoreOpener = Callable[[str, StoreOptions], DeadLetterStore]

_registered: dict[str, StoreOpener] = {}


def register_store_opener(scheme: str, opener: StoreOpener) -> Callable[[], None]:
    """Open URLs with `scheme` with `opener` in this process (before the entry points).
    Returns a function that removes the registration again."""
    key = scheme.lower()
    previous = _registered.get(key)
    _registered[key] = opener

    def unregister() -> None:
        if previous is None:
            _registered.pop(key, None)
        else:
            _registered[key] = previous

    return unregister


def store_schemes() -> list[str]:
    """Every scheme a store is registered for."""
    found = {entry.name.lower() for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(found | set(_registered))


def store_opener(scheme: str) -> StoreOpener | None:
    key = scheme.lower()
    opener = _registered.get(key)
    if opener is not None:
        return opener
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name.lower() == key:
            loaded: StoreOpener = entry.load()  # imports the backend (its extra may be missing)
            return loaded
    return None


def open_store(
    broker_url: str,
    *,
    topic: str | None = None,
    source_topic: str | None = None,
    queue: str | None = None,
    exchange: str | None = None,
    replay_group: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    sasl_mechanism: str | None = None,
) -> DeadLetterStore:
    """The store for `broker_url`, by its scheme. With Dispytch's own backends:

    - `kafka://host:9092[,host2:9092]` (`kafka+ssl://` for TLS): the dead-letter topic
      `topic`, or `<source_topic>.dlq`; `replay_group` names the group that records replay
      progress. With a user name (`kafka+ssl://user:password@host:9094`, or `username=`), it
      logs in with SASL (`sasl_mechanism`, default SCRAM-SHA-512);
    - `amqp://user:password@host:5672/vhost` (`amqps://` for TLS): the dead-letter queue
      `queue` (default `dispytch.dlq`), replayed through `exchange` (default: the queue's name
      without `.dlq`). `source_topic` is not a destination on RabbitMQ (one queue holds the
      dead letters of every topic): filter with `LetterFilter(original_topics=...)` instead;
    - `redis://host:6379/0` (`rediss://` for TLS): the dead-letter stream `topic`, or
      `<source_topic>.dlq`.

    `username` and `password` replace those of the URL; `ssl_context` sets up TLS (for a TLS
    URL only; without it, TLS verifies against the system's CA certificates).
    """
    try:
        scheme = urlsplit(broker_url).scheme
    except ValueError as error:
        raise StoreUsageError(f"invalid broker URL {masked_url(broker_url)!r}: {error}") from None
    opener = store_opener(scheme) if scheme else None
    if opener is None:
        known = ", ".join(f"{name}://" for name in store_schemes()) or "none registered"
        raise StoreUsageError(
            f"unsupported broker URL {masked_url(broker_url)!r}: no dead-letter store for "
            f"this scheme (known: {known})"
        )
    options = StoreOptions(
        topic,
        source_topic,
        queue,
        exchange,
        replay_group,
        username,
        password,
        ssl_context,
        sasl_mechanism,
    )
    return opener(broker_url, options)
