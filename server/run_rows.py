"""A run's rows in the run store and the typed objects they hold: the record (``server.schemas.RunView``, the one
shape the API returns) read back from the ``runs`` and ``nodes`` rows, and the node states an event moves written
into them. Events are stored in their wire shape (``Event.to_dict``), the bytes every replay sends."""

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
from nodeforge.engine.record import NodeRecord, NodeStatus
from nodeforge.server.schemas import RunSummary, RunView

_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    return _JSON.encode(value)


def read_run(db: sqlite3.Connection, run_id: str) -> RunView | None:
    row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    nodes = {node["node"]: NodeRecord(
        type=node["type"], status=node["status"], device=node["device"], started=node["started_at"],
        finished=node["finished_at"], seconds=node["seconds"], error=node["error"], traceback=node["traceback"],
        details=_loads(node["details"]) or {}) for node in db.execute("SELECT * FROM nodes WHERE run = ?", (run_id,))}
    return RunView(**_head(row), inputs=_loads(row["shown_inputs"]) or _loads(row["inputs"]) or {},
                   seeds=_loads(row["seeds"]) or {}, outputs=_loads(row["outputs"]) or {}, nodes=nodes,
                   devices=_loads(row["devices"]) or [])


def summary(row: sqlite3.Row) -> RunSummary:
    return RunSummary(**_head(row))


def _head(row: sqlite3.Row) -> dict[str, Any]:
    """The fields of a run's row that its summary shows."""
    return {"id": row["id"], "graph": row["graph"], "status": row["status"], "error": row["error"],
            "created": row["created_at"], "started": row["started_at"], "finished": row["finished_at"]}


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


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
