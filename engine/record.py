"""The run record: what ``nodeforge run --json`` prints and ``GET /api/runs/{id}`` returns (design.md section 6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

NodeStatus = Literal["pending", "running", "succeeded", "cached", "failed", "skipped", "cancelled"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


def iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


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

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "status": self.status, "device": self.device, "started_at": iso(self.started),
                "finished_at": iso(self.finished), "seconds": self.seconds, "error": self.error,
                "traceback": self.traceback}


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
