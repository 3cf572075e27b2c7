"""A live per-node progress table for terminals, fed by the same event stream as the server's SSE."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from nodeforge.engine.events import (
    Event,
    NodeFailed,
    NodeFinished,
    NodeProgress,
    NodeStarted,
    RunFinished,
    status_changes,
)

STYLE = {"queued": "dim", "running": "yellow", "succeeded": "green", "cached": "cyan", "failed": "bold red",
         "skipped": "magenta", "cancelled": "red"}
TAIL = 60


@dataclass(slots=True)
class _Row:
    type: str
    status: str = "queued"
    device: str = ""
    step: int = 0
    total: int | None = None
    text: str = ""
    seconds: float | None = None


class ProgressDisplay:
    """Use as a context manager around a run and pass ``listen`` as the run's listener."""

    def __init__(self, node_types: dict[str, str], console: Console | None = None) -> None:
        self._rows = {node_id: _Row(node_type) for node_id, node_type in node_types.items()}
        self._lock = threading.Lock()
        self._status = "running"
        self._live = Live(get_renderable=self._render, console=console or Console(), refresh_per_second=8,
                          transient=False)

    def __enter__(self) -> ProgressDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.refresh()
        self._live.__exit__(*exc)

    def listen(self, event: Event) -> None:
        with self._lock:
            for node_id, status in status_changes(event.data):
                if (moved := self._rows.get(node_id)) is not None:
                    moved.status = status
            match event.data:
                case RunFinished(status=run_status):
                    self._status = run_status
                case NodeStarted(node=node, device=device) if node in self._rows:
                    self._rows[node].device = device
                case NodeProgress(node=node, step=step, total=total, text=text, delta=delta) if node in self._rows:
                    row = self._rows[node]
                    row.step, row.total = step, total
                    if delta is not None:  # streamed text: the row shows the tail of the deltas joined
                        row.text = (row.text + delta)[-TAIL:]
                    elif text is not None:
                        row.text = text[-TAIL:]
                case NodeFinished(node=node, seconds=seconds) if node in self._rows:
                    self._rows[node].seconds = seconds
                case NodeFailed(node=node, error=error) if node in self._rows:
                    self._rows[node].text = error[:100]

    def _render(self) -> Group:
        table = Table(box=None, pad_edge=False, expand=False)
        for column in ("node", "type", "status", "device", "progress", "seconds", ""):
            table.add_column(column)
        with self._lock:
            for node_id, row in self._rows.items():
                bar: Any = ""
                if row.total:
                    bar = ProgressBar(total=row.total, completed=row.step, width=20)
                seconds = f"{row.seconds:.2f}" if row.seconds is not None else ""
                table.add_row(node_id, row.type, Text(row.status, style=STYLE.get(row.status, "")), row.device,
                              bar, seconds, row.text)
            status = self._status
        return Group(table, Text(f"run: {status}", style=STYLE.get(status, "bold")))
