"""Creating a consumer group's retry topic before the consumer subscribes to it.

It is created before subscribing because a consumer subscribed to a missing topic makes the
broker auto-create it (with the broker's default partition count, usually 1). The default
partition count is that of the largest handler topic, so retries are spread over the group's
members as widely as the events they retry; the replication factor is the largest of the
handler topics' (aiokafka's CreateTopics request cannot ask for the broker's default), or
min(3, brokers) when no handler topic exists yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest

from dispytch.kafka._errors import KAFKA_EXCEPTIONS
from dispytch.kafka._secure import start_error

log = logging.getLogger("dispytch.kafka")

#: aiokafka warns that `api_version` is a no-op for the admin client
_NOT_FOR_ADMIN = frozenset({"api_version"})
_READY_TIMEOUT = 30.0


async def ensure_retry_topic(
    options: dict[str, Any],
    topic: str,
    partitions: int | None,
    handler_topic: Callable[[str], bool],
    handler_topics: Sequence[str] = (),
    create: bool = True,
) -> bool:
    """Create `topic` unless it exists, with `partitions` partitions (default: as many as the
    largest existing topic `handler_topic` accepts, at least 1), and wait until it has leaders.

    `handler_topics` are the literal topics of the subscription (none for a pattern: then
    every existing topic `handler_topic` accepts counts). Topics are listed (one metadata
    request for the whole cluster) rather than described one by one, see below.

    With `create=False` it only checks, asking for that one topic (see `_exists`). Returns
    whether the topic exists now.
    """
    if not create:
        return await _exists(options, topic)
    admin = AIOKafkaAdminClient(**{k: v for k, v in options.items() if k not in _NOT_FOR_ADMIN})
    # said in the error: an unreachable broker is not a failure to create the retry topic
    doing = "connecting"
    try:
        await admin.start()
        doing = f"looking for the retry topic {topic!r}"
        # listed, not described: aiokafka's describe_topics asks the broker to auto-create
        # the topics it names, and the public API has no way to ask otherwise
        existing = set(await admin.list_topics())
        if topic in existing:
            return True
        doing = f"creating the retry topic {topic!r}"
        if handler_topics:
            matching = [t for t in handler_topics if t in existing]
        else:
            matching = [t for t in existing if handler_topic(t)]
        described = await admin.describe_topics(matching) if matching else []
        largest, replication = await _shape(admin, described)
        await _create(admin, topic, partitions or largest, replication)
        await _wait_for_leaders(admin, topic, partitions or largest)
        return True
    except KAFKA_EXCEPTIONS as exc:
        raise await start_error(exc, options, doing) from exc
    finally:
        await _close(admin)


async def _exists(options: dict[str, Any], topic: str) -> bool:
    """Whether `topic` exists, from a metadata request for it alone that does not let the
    broker auto-create it (the admin client's `describe_topics` would). Listing every topic
    instead costs a metadata response for the whole cluster at each start: 30 ms for 1,500
    topics on the development broker, for a listener whose handlers do not retry later.
    A topic this client may not describe counts as missing, as it would not be listed."""
    client = AIOKafkaClient(**{k: v for k, v in options.items() if k not in _NOT_FOR_ADMIN})
    doing = "connecting"
    try:
        await client.bootstrap()
        doing = f"looking for the retry topic {topic!r}"
        request = MetadataRequest([topic], allow_auto_topic_creation=False)
        response = await client.send(client.get_random_node(), request)
        found = response.to_object()["topics"]
    except KAFKA_EXCEPTIONS as exc:
        raise await start_error(exc, options, doing) from exc
    finally:
        with contextlib.suppress(*KAFKA_EXCEPTIONS):
            await client.close()
    return any(item["topic"] == topic and item["error_code"] not in _MISSING for item in found)


#: metadata error codes that mean "no such topic" for this client
_MISSING = frozenset(
    (
        kafka_errors.UnknownTopicOrPartitionError.errno,
        kafka_errors.TopicAuthorizationFailedError.errno,
    )
)


async def _close(admin: AIOKafkaAdminClient) -> None:
    with contextlib.suppress(*KAFKA_EXCEPTIONS):
        await admin.close()


async def _shape(admin: AIOKafkaAdminClient, described: list[dict[str, Any]]) -> tuple[int, int]:
    """The largest partition count and replication factor among `described` topics."""
    described = [item for item in described if not item["error_code"]]
    if not described:
        cluster = await admin.describe_cluster()
        return 1, max(1, min(3, len(cluster.get("brokers", ()))))
    partitions = max(len(item["partitions"]) for item in described)
    replication = max(len(p["replicas"]) for item in described for p in item["partitions"])
    return max(partitions, 1), max(replication, 1)


async def _create(
    admin: AIOKafkaAdminClient, topic: str, partitions: int, replication: int
) -> None:
    response = await admin.create_topics([NewTopic(topic, partitions, replication)])
    for item in response.topic_errors:
        code = item[1]
        if code and code != kafka_errors.TopicAlreadyExistsError.errno:
            error = kafka_errors.for_code(code)
            message = item[2] if len(item) > 2 else ""
            raise error(f"cannot create the retry topic {topic!r}: {message}")
    log.info("created the retry topic %r with %d partition(s)", topic, partitions)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topic: str, partitions: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _READY_TIMEOUT
    pause = 0.005  # leaders usually follow within milliseconds: poll fast, then back off
    while loop.time() < deadline:
        [described] = await admin.describe_topics([topic])
        ready = [p for p in described["partitions"] if p.get("leader", -1) >= 0]
        if not described["error_code"] and len(ready) >= partitions:
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)
    log.warning("the retry topic %r has no leader for every partition yet", topic)
