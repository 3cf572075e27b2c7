"""The run record: what ``nodeforge run --json`` prints and ``GET /api/runs/{id}`` returns (design.md section 6)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

NodeStatus = Literal["pending", "running", "succeeded", "cached", "failed", "skipped", "cancelled"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


def iso(timestamp: float | None) -> str | None:
    """A UTC time with milliseconds, as ``datetime.isoformat(timespec="milliseconds")`` writes it. A run's
    timestamps fall in a few seconds, so the date and time of the last second seen are kept (a record of 10,000
    nodes formats 20,000 of them)."""
    if timestamp is None:
        return None
    fraction, whole = math.modf(timestamp)
    micros = round(fraction * 1e6)  # datetime.fromtimestamp rounds to microseconds the same way (half even)
    second = int(whole)
    if micros >= 1_000_000 or micros < 0:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    cached = _LAST_SECOND[0]
    if cached[0] != second:
        _LAST_SECOND[0] = cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{micros // 1000:03d}+00:00"


_LAST_SECOND: list[tuple[int, str]] = [(-1, "")]  # one slot, swapped whole: threads never see half an update


@dataclass(slots=True)
class NodeRecord:
    type: str
    status: NodeStatus = "pending"
    device: str | None = None
    started: float | None = None
    finished: float | None = None
    seconds: float | None = None
    error: str | None = None
    traceback: str | None = None
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What the node recorded about how it ran (``ctx.record_detail``), by name: e.g. ``memory``."""

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "status": self.status, "device": self.device, "started_at": iso(self.started),
                "finished_at": iso(self.finished), "seconds": self.seconds, "error": self.error,
                "traceback": self.traceback, "details": self.details}


@dataclass(slots=True)
class RunRecord:
    id: str
    graph: str
    status: RunStatus = "running"
    inputs: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    error: str | None = None
    devices: list[str] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "graph": self.graph, "status": self.status, "inputs": self.inputs,
                "seeds": self.seeds, "outputs": self.outputs,
                "nodes": {node_id: node.to_json() for node_id, node in self.nodes.items()},
                "error": self.error, "devices": self.devices, "started_at": iso(self.started),
                "finished_at": iso(self.finished)}
