"""A run's rows in the run store and the typed events written into them: the node states an event moves. Events are
stored in their wire shape (``Event.to_dict``), the bytes every replay sends."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from nodeforge.engine.events import (
    Event,
    NodeFailed,
    NodeFinished,
    NodesCached,
    NodeSkipped,
    NodeStarted,
    status_changes,
)
from nodeforge.engine.record import NodeStatus

_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    return _JSON.encode(value)


def wire(event: Event) -> str:
    return dumps(event.to_dict())


def apply_event(db: sqlite3.Connection, event_id: int, event: Event) -> None:
    """Store an event and move the nodes it names to the status it gives them (``status_changes``)."""
    db.execute("INSERT INTO events (id, run, seq, data) VALUES (?, ?, ?, ?)",
               (event_id, event.run, event.seq, wire(event)))
    at, run = event.at, event.run
    changes = status_changes(event.data)
    match event.data:
        case NodesCached():  # many nodes at once, nothing else to record for them
            db.executemany("UPDATE nodes SET status = ?, finished_at = ? WHERE run = ? AND node = ?",
                           [(status, at, run, node) for node, status in changes])
        case NodeStarted(device=device):
            db.executemany("UPDATE nodes SET status = ?, device = ?, started_at = ? WHERE run = ? AND node = ?",
                           [(status, device, at, run, node) for node, status in changes])
        case NodeFinished(seconds=seconds):
            _settle(db, run, changes, at, seconds, None)
        case NodeFailed(error=error):
            _settle(db, run, changes, at, None, error)
        case NodeSkipped(error=error):
            _settle(db, run, changes, None, None, error)


def _settle(db: sqlite3.Connection, run: str, changes: list[tuple[str, NodeStatus]], at: float | None,
            seconds: float | None, error: str | None) -> None:
    db.executemany("UPDATE nodes SET status = ?, finished_at = ?, seconds = COALESCE(?, seconds), "
                   "error = COALESCE(?, error) WHERE run = ? AND node = ?",
                   [(status, at, seconds, error, run, node) for node, status in changes])
