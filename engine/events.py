"""The one typed event stream: CLI progress, server-sent events and run history all read it.

Each event is O(1) in size: it describes one change (a node started, a step advanced), never the whole graph;
streamed text comes as a ``delta`` (the new piece), never as the text so far.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

EventKind = Literal[
    "run.queued", "run.started", "node.started", "node.progress", "node.cached", "node.finished", "node.failed",
    "node.skipped", "node.warning", "model.loaded", "model.offloaded", "run.finished",
]


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    run: str
    seq: int
    at: float
    node: str | None = None
    node_type: str | None = None
    device: str | None = None
    step: int | None = None
    total: int | None = None
    text: str | None = None
    delta: str | None = None
    seconds: float | None = None
    error: str | None = None
    status: str | None = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


Listener = Callable[[Event], None]


class EventEmitter:
    """Numbers a run's events in order and hands them to a listener; safe to call from worker threads."""

    def __init__(self, run_id: str, listener: Listener | None) -> None:
        self.run_id = run_id
        self._listener = listener
        self._seq = 0
        self._lock = threading.Lock()

    def emit(self, kind: EventKind, **fields: Any) -> None:
        if self._listener is None:
            return
        with self._lock:
            self._seq += 1
            self._listener(Event(kind, self.run_id, self._seq, time.time(), **fields))
