"""The event log: numbers every event once, stores it and hands it to live listeners in the same order.

Engine events and the server's own run events (``run.queued``, a ``run.finished`` for a run
cancelled in the queue or interrupted) go through here, so the database, the per-run SSE stream, ``/api/events``
and the CLI display all see one sequence. Each event describes one change and is O(1) in size. Run events stay typed
(``engine.events.Event``) until they are written: the store writes their wire shape, live listeners get the typed
event. Every run event is redacted here, before it is stored or published: the stored copy, every replay and every
live listener read the same clean event (``server/redact.py``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nodeforge.engine.events import Event, EventData
from nodeforge.server.event_hub import EventHub
from nodeforge.server.redact import Redactor
from nodeforge.server.run_store import RunStore


class EventLog:
    def __init__(self, store: RunStore, hub: EventHub, redact: Redactor) -> None:
        self.store = store
        self.hub = hub
        self.redact = redact
        self._lock = threading.Lock()
        self._last_id = store.last_event_id()

    def reserve(self) -> int:
        """An event id for an event the caller stores itself (inside its own transaction)."""
        with self._lock:
            self._last_id += 1
            return self._last_id

    def record(self, event: Event) -> int:
        """Store a run event (without waiting) and publish it, redacted; returns its id."""
        event = self.redact.event(event)
        with self._lock:
            self._last_id += 1
            event_id = self._last_id
            self.store.append_event(event_id, event)
            self.hub.publish(event.run, (event_id, event))
        return event_id

    def number(self, event: Event) -> tuple[int, Event]:
        """Redact a run's final event and give it an id: the caller stores it with the run's record
        (``RunStore.finish_run``) and then publishes it (``publish``)."""
        return self.reserve(), self.redact.event(event)

    def publish(self, event_id: int, event: Event) -> None:
        self.hub.publish(event.run, (event_id, event))

    def announce(self, event: dict[str, Any]) -> None:
        """A server event that belongs to no run (``library.changed``, ``plugins.reloaded``): live only."""
        self.hub.publish(None, (None, {**event, "at": time.time()}))


def run_event(run_id: str, seq: int, data: EventData) -> Event:
    """A server-made run event, stamped now."""
    return Event(run_id, seq, time.time(), data)
