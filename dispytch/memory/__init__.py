"""The in-memory broker: the embedded default for demos and the tool for users' own tests."""

from dispytch.memory.broker import InMemoryBroker
from dispytch.memory.consumer import InMemoryConsumer, InMemoryDelivery
from dispytch.memory.producer import InMemoryProducer

__all__ = ["InMemoryBroker", "InMemoryConsumer", "InMemoryDelivery", "InMemoryProducer"]
