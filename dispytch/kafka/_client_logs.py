"""aiokafka's log lines for situations Dispytch expects, made quieter.

The first send to a topic the broker creates on first use makes aiokafka log "Topic ... not
found in cluster metadata" at ERROR, then the send succeeds. When the topic never appears,
the send fails and Dispytch raises its own error naming the topic, so the line says nothing
more: it is logged at DEBUG instead (still there for whoever debugs the client).
"""

from __future__ import annotations

import logging

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


def quiet_expected_client_logs() -> None:
    """Install the filter (once; calling again changes nothing)."""
    logging.getLogger(_CLUSTER_LOGGER).addFilter(_FILTER)
