"""The event log: numbers every event once, stores it and hands it to live listeners in the same order.

Engine events (``Event.to_dict()``) and the server's own run events (``run.queued``, a ``run.finished`` for a run
cancelled in the queue or interrupted) go through here, so the database, the per-run SSE stream, ``/api/events``
and the CLI display all see one sequence. Each event describes one change and is O(1) in size.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nodeforge.engine.events import EventData, data_fields
from nodeforge.server.hub import EventHub
from nodeforge.server.store import RunStore


class EventLog:
    def __init__(self, store: RunStore, hub: EventHub) -> None:
        self.store = store
        self.hub = hub
        self._lock = threading.Lock()
        self._last_id = store.last_event_id()

    def reserve(self) -> int:
        """An event id for an event the caller stores itself (inside its own transaction)."""
        with self._lock:
            self._last_id += 1
            return self._last_id

    def record(self, event: dict[str, Any]) -> int:
        """Store a run event (without waiting) and publish it; returns its id."""
        with self._lock:
            self._last_id += 1
            event_id = self._last_id
            self.store.append_event(event_id, event)
            self.hub.publish(event["run"], (event_id, event))
        return event_id

    def announce(self, event: dict[str, Any]) -> None:
        """A server event that belongs to no run (``library.changed``, ``plugins.reloaded``): live only."""
        self.hub.publish(None, (None, {**event, "at": time.time()}))


def run_event(run_id: str, seq: int, data: EventData) -> dict[str, Any]:
    """A server-made run event in the engine's shape."""
    return {"kind": data.kind, "run": run_id, "seq": seq, "at": time.time(), **data_fields(data)}
