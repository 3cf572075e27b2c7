"""The event log: numbers every event once, stores it and hands it to live listeners in the same order.

Engine events (``Event.to_dict()``) and the server's own run events (``run.queued``, a ``run.finished`` for a run
cancelled in the queue or interrupted) go through here, so the database, the per-run SSE stream, ``/api/events``
and the CLI display all see one sequence. Each event describes one change and is O(1) in size. Every run event is
redacted here, before it is stored or published: the stored copy, every replay and every live listener read the
same clean event (``server/redact.py``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nodeforge.engine.events import EventData, data_fields
from nodeforge.engine.record import RunRecord
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

    def record(self, event: dict[str, Any]) -> int:
        """Store a run event (without waiting) and publish it, redacted; returns its id."""
        self.redact.event(event)
        with self._lock:
            self._last_id += 1
            event_id = self._last_id
            self.store.append_event(event_id, event)
            self.hub.publish(event["run"], (event_id, event))
        return event_id

    def number(self, event: dict[str, Any]) -> int:
        """Redact a run's final event and give it an id: the caller stores it with the run's record
        (``RunStore.finish_run``) and then publishes it (``publish``)."""
        self.redact.event(event)
        return self.reserve()

    def publish(self, event_id: int, event: dict[str, Any]) -> None:
        self.hub.publish(event["run"], (event_id, event))

    def finish(self, record: RunRecord, event: dict[str, Any]) -> int:
        """Store a run's final record and its ``run.finished`` event together, then publish the event; both
        redacted. Raises what the store raised (nothing is published then)."""
        self.redact.record(record)
        event_id = self.number(event)
        self.store.finish_run(record, event_id, event)
        self.publish(event_id, event)
        return event_id

    def announce(self, event: dict[str, Any]) -> None:
        """A server event that belongs to no run (``library.changed``, ``plugins.reloaded``): live only."""
        self.hub.publish(None, (None, {**event, "at": time.time()}))


def run_event(run_id: str, seq: int, data: EventData) -> dict[str, Any]:
    """A server-made run event in the engine's shape."""
    return {"kind": data.kind, "run": run_id, "seq": seq, "at": time.time(), **data_fields(data)}
