"""The run record: what ``nodeforge run --json`` prints, ``GET /api/runs/{id}`` returns and the server's run store
keeps (design.md section 6). One pydantic model: its JSON and the API's JSON Schema both come from it (the server's
view adds only when the run was queued and where its events stream, ``server.schemas.RunView``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_serializer

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


class _Timed(BaseModel):
    """Start and end are Unix times in memory (``started``, ``finished``: the engine stamps them with
    ``time.time()``) and ISO 8601 (``iso``) in JSON, as ``started_at`` and ``finished_at``."""

    model_config = ConfigDict(serialize_by_alias=True, json_schema_serialization_defaults_required=True,
                              defer_build=True)  # built on first use: `nodeforge --help` never needs them

    @field_serializer("started", "finished", check_fields=False)
    def _iso(self, timestamp: float | None) -> str | None:
        return iso(timestamp)


Stamp = Annotated[float | None, PlainSerializer(iso, return_type=str | None)]
"""A Unix time in memory, ISO 8601 in JSON."""


@dataclass(slots=True)
class NodeRecord:
    """One node's part of the run record. A slotted dataclass, not a model of its own: a run makes and changes one
    per node (a fully cached 1,000-node run makes 1,000), which a pydantic model makes several times dearer; the
    run record's model validates, serializes and describes it all the same (pydantic takes dataclasses as
    fields)."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(serialize_by_alias=True,
                                                         json_schema_serialization_defaults_required=True)

    type: str
    status: NodeStatus = "pending"
    device: str | None = None
    started: Annotated[Stamp, Field(serialization_alias="started_at")] = None
    finished: Annotated[Stamp, Field(serialization_alias="finished_at")] = None
    seconds: float | None = None
    error: str | None = None
    traceback: str | None = None
    details: Annotated[dict[str, dict[str, Any]], Field(description=(
        "what the node recorded about how it ran (ctx.record_detail), by name: e.g. memory, the memory mode it ran "
        "in and why"))] = field(default_factory=dict)


class RunHead(_Timed):
    """What a list of runs shows of each."""

    id: str
    graph: str
    status: RunStatus = "running"
    error: str | None = None
    started: float | None = Field(default=None, serialization_alias="started_at")
    finished: float | None = Field(default=None, serialization_alias="finished_at")


class RunRecord(RunHead):
    inputs: dict[str, Any] = Field(default_factory=dict)
    seeds: dict[str, int] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict, description=(
        "text and numbers as values; media as {path, media_type} (CLI) or {artifact, url, media_type, filename, "
        "size} (API)"))
    nodes: dict[str, NodeRecord] = Field(default_factory=dict)
    devices: list[str] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
