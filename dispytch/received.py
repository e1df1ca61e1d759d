"""What handlers are called with: the Event built for a delivery, or, for a handler whose Event
parameters want several body types, the message that builds one Event per body type."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from dispytch.backends.base import Delivery
from dispytch.envelope import Envelope
from dispytch.events import Event

_new_object = object.__new__

#: validated bodies by body type (None: the raw body)
Bodies = dict[type[BaseModel] | None, Any]


class Message:
    """One decoded delivery, as a handler whose Event parameters want several body types sees
    it: validated bodies (shared by all the handlers of the delivery), the events built from
    them, and the attempt number."""

    __slots__ = ("attempt", "bodies", "delivery", "envelope", "events", "id", "type")

    def __init__(
        self,
        envelope: Envelope,
        delivery: Delivery,
        attempt: int,
        bodies: Bodies,
    ) -> None:
        self.envelope = envelope
        self.id, self.type = envelope[0], envelope[1]
        self.delivery = delivery
        self.attempt = attempt
        #: validated bodies by body type (None: the raw body)
        self.bodies = bodies
        self.events: dict[type[BaseModel] | None, Event[Any]] = {}

    def event_for(self, body_type: type[BaseModel] | None) -> Event[Any]:
        event = self.events.get(body_type)
        if event is None:
            event = self.events[body_type] = new_event(
                self.envelope, self.delivery, self.bodies[body_type], self.attempt
            )
        else:
            event.attempt = self.attempt
        return event


#: what one handler run is called with: its Event (plans with `single_event`), or a Message
#: that builds the Event for each body type
Run = Event[Any] | Message


def new_event(envelope: Envelope, delivery: Delivery, body: Any, attempt: int) -> Event[Any]:
    # built slot by slot: this runs for every event, and keyword parsing costs
    event: Event[Any] = _new_object(Event)
    event.id, event.type, _, event.timestamp = envelope
    event.topic = delivery.topic
    event.body = body
    event.headers = delivery.headers
    event.key = delivery.key
    event.attempt = attempt
    event.metadata = delivery.metadata
    return event
