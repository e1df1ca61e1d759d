"""The Kafka backend, on aiokafka: `pip install 'dispytch[kafka]'`.

See docs/backends/kafka.md for the delivery guarantees, ordering and dead letters.
"""

from dispytch.errors import missing_extra

try:
    import aiokafka  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("kafka", "aiokafka") from exc

from dispytch.kafka.config import KafkaEventConfig
from dispytch.kafka.consumer import KAFKA_CAPABILITIES, KafkaConsumer
from dispytch.kafka.dead_letter_store import KafkaDeadLetterStore
from dispytch.kafka.producer import KafkaProducer

__all__ = [
    "KAFKA_CAPABILITIES",
    "KafkaConsumer",
    "KafkaDeadLetterStore",
    "KafkaEventConfig",
    "KafkaProducer",
]
