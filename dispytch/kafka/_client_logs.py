"""aiokafka's log lines for situations Dispytch expects: made quieter, or read for a cause.

The first send to a topic the broker creates on first use makes aiokafka log "Topic ... not
found in cluster metadata" at ERROR, then the send succeeds. When the topic never appears,
the send fails and Dispytch raises its own error naming the topic, so the line says nothing
more: it is logged at DEBUG instead (still there for whoever debugs the client).

A produce request that the partition leader refuses for a passing reason (no leader, too few
replicas in sync) is retried by aiokafka, which only logs it; an idempotent producer retries
until it succeeds. The last such refusal per topic is remembered, so that an emit that times
out can say why (`retried_produce_error`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

_CLUSTER_LOGGER = "aiokafka.cluster"
_UNKNOWN_TOPIC = "Topic %s not found in cluster metadata"


class _UnknownTopicToDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _UNKNOWN_TOPIC and record.levelno > logging.DEBUG:
            record.levelno = logging.DEBUG
            record.levelname = logging.getLevelName(logging.DEBUG)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_FILTER = _UnknownTopicToDebug()

_SENDER_LOGGER = "aiokafka.producer.sender"
_RETRYING = "Got error produce response on topic-partition %s, retrying. Error: %s"
#: topic -> (when, what) of the last produce error that aiokafka answered by trying again
_RETRIED: OrderedDict[str, tuple[float, str]] = OrderedDict()
_RETRIED_TOPICS = 1024


class _RetriedProduceErrors(logging.Filter):
    """Remembers, per topic, the last error a partition leader answered a produce request with
    and aiokafka retried (it only logs those: with idempotence it retries until it succeeds)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _RETRYING and isinstance(record.args, tuple) and len(record.args) == 2:
            partition, error = record.args
            topic = getattr(partition, "topic", None)
            if isinstance(topic, str):
                what = error if isinstance(error, str) else getattr(error, "__name__", "")
                _RETRIED[topic] = (time.monotonic(), str(what)[:200])
                _RETRIED.move_to_end(topic)
                while len(_RETRIED) > _RETRIED_TOPICS:
                    _RETRIED.popitem(last=False)
        return True


_SENDER_FILTER = _RetriedProduceErrors()


def retried_produce_error(topic: str, within: float) -> str | None:
    """The error aiokafka last retried a produce request to `topic` for, if it did so in the
    last `within` seconds (None when the `aiokafka.producer.sender` logger drops warnings)."""
    seen = _RETRIED.get(topic)
    if seen is None or time.monotonic() - seen[0] > within:
        return None
    return seen[1]


def quiet_expected_client_logs() -> None:
    """Install the filters (once; calling again changes nothing)."""
    logging.getLogger(_CLUSTER_LOGGER).addFilter(_FILTER)
    logging.getLogger(_SENDER_LOGGER).addFilter(_SENDER_FILTER)
