"""The one typed event stream: CLI progress, server-sent events and run history all read it.

Each event is bounded in size: it describes one change (a node started, a step advanced), never the whole graph;
streamed text comes as a ``delta`` (the new piece), never as the text so far. The nodes a run will not execute
because of the cache come as ``nodes.cached`` events of up to ``CACHED_PER_EVENT`` ids each, so a fully cached run
costs a few bytes per node rather than an event per node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from nodeforge.engine.record import RunStatus

EventKind = Literal[
    "run.queued", "run.started", "node.started", "node.progress", "node.preview", "nodes.cached", "node.finished",
    "node.failed", "node.skipped", "node.warning", "model.loaded", "model.offloaded", "run.finished",
]
CACHED_PER_EVENT = 1000
"""Most node ids one ``nodes.cached`` event lists: a larger graph's cached nodes come in several events."""

NODE_STATUS: Mapping[str, str] = MappingProxyType({
    "node.started": "running", "node.finished": "succeeded", "node.failed": "failed", "node.skipped": "skipped",
    "nodes.cached": "cached", "node.cached": "cached",  # node.cached: one per node, in runs stored before 0.2
})
"""The one rule from an event to a node's status: the CLI's table, the server's run store and the editor (which
reads it from ``GET /api/nodes``) all apply it."""


def status_changes(kind: str, node: str | None, nodes: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(node, status) for each node an event of ``kind`` moves; empty for events that move none."""
    status = NODE_STATUS.get(kind)
    if status is None:
        return []
    if nodes is not None:
        return [(node_id, status) for node_id in nodes]
    return [(node, status)] if node else []


# What each kind of event carries: one class per kind, given to ``EventEmitter.emit``.

@dataclass(frozen=True, slots=True)
class RunQueued:
    """The server accepted a run (the server makes this one)."""

    kind: ClassVar[Literal["run.queued"]] = "run.queued"


@dataclass(frozen=True, slots=True)
class RunStarted:
    kind: ClassVar[Literal["run.started"]] = "run.started"


@dataclass(frozen=True, slots=True)
class NodeStarted:
    kind: ClassVar[Literal["node.started"]] = "node.started"
    node: str
    node_type: str
    device: str


@dataclass(frozen=True, slots=True)
class NodeProgress:
    """A step advanced; ``text`` replaces the last status, ``delta`` is streamed text (the new piece only)."""

    kind: ClassVar[Literal["node.progress"]] = "node.progress"
    node: str
    step: int
    total: int | None = None
    text: str | None = None
    delta: str | None = None


@dataclass(frozen=True, slots=True)
class NodePreview:
    """A small picture of what a node is making, at ``step`` of ``total`` (a diffusion node's current latent):
    ``link`` leads to the stored picture (a URL on the server, a file path with ``nodeforge run --previews``) of
    ``width`` x ``height`` pixels. The picture never travels in the event (``engine.previews``)."""

    kind: ClassVar[Literal["node.preview"]] = "node.preview"
    node: str
    step: int
    link: str
    width: int
    height: int
    total: int | None = None


@dataclass(frozen=True, slots=True)
class NodesCached:
    """Nodes that will not run because their result, or everything that depends on them, is cached: one event for
    up to ``CACHED_PER_EVENT`` of them (ids only: a fully cached run's events stay a few bytes per node)."""

    kind: ClassVar[Literal["nodes.cached"]] = "nodes.cached"
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeFinished:
    kind: ClassVar[Literal["node.finished"]] = "node.finished"
    node: str
    node_type: str
    device: str
    seconds: float


@dataclass(frozen=True, slots=True)
class NodeFailed:
    kind: ClassVar[Literal["node.failed"]] = "node.failed"
    node: str
    node_type: str
    error: str


@dataclass(frozen=True, slots=True)
class NodeSkipped:
    """``error`` says why (a failed ancestor)."""

    kind: ClassVar[Literal["node.skipped"]] = "node.skipped"
    node: str
    node_type: str
    error: str | None


@dataclass(frozen=True, slots=True)
class NodeWarning:
    kind: ClassVar[Literal["node.warning"]] = "node.warning"
    node: str
    text: str
    node_type: str | None = None
    device: str | None = None


@dataclass(frozen=True, slots=True)
class ModelLoaded:
    """``text`` is "from cpu" when the model came back from CPU RAM rather than from its loader."""

    kind: ClassVar[Literal["model.loaded"]] = "model.loaded"
    model: str
    device: str
    seconds: float
    node: str | None = None
    text: Literal["from cpu"] | None = None


@dataclass(frozen=True, slots=True)
class ModelOffloaded:
    kind: ClassVar[Literal["model.offloaded"]] = "model.offloaded"
    model: str
    device: str
    text: Literal["to cpu", "dropped"]


@dataclass(frozen=True, slots=True)
class RunFinished:
    kind: ClassVar[Literal["run.finished"]] = "run.finished"
    status: RunStatus
    error: str | None = None


EventData = (RunQueued | RunStarted | NodeStarted | NodeProgress | NodePreview | NodesCached | NodeFinished
             | NodeFailed | NodeSkipped | NodeWarning | ModelLoaded | ModelOffloaded | RunFinished)
EVENT_DATA: dict[str, type[EventData]] = {cls.kind: cls for cls in (
    RunQueued, RunStarted, NodeStarted, NodeProgress, NodePreview, NodesCached, NodeFinished, NodeFailed, NodeSkipped,
    NodeWarning, ModelLoaded, ModelOffloaded, RunFinished)}


def data_fields(data: EventData) -> dict[str, Any]:
    """An event's own fields by name, in the order its class declares them, those not set left out."""
    return {field.name: value for field in fields(data) if (value := getattr(data, field.name)) is not None}


def event_data(kind: str, values: dict[str, Any]) -> EventData:
    """The typed data of an event that travelled as a kind and its fields (``data_fields``)."""
    return EVENT_DATA[kind](**values)


@dataclass(frozen=True, slots=True)
class Event:
    """One event as listeners, the run store and the SSE stream see it: the envelope (kind, run, seq, at) and the
    fields its kind carries (the others None)."""

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
    nodes: tuple[str, ...] | None = None
    link: str | None = None
    width: int | None = None
    height: int | None = None

    @classmethod
    def of(cls, run: str, seq: int, at: float, data: EventData) -> Event:
        return cls(data.kind, run, seq, at, **data_fields(data))

    def to_dict(self) -> dict[str, Any]:
        """The wire shape: the envelope and the fields that are set (read one by one: ``asdict`` deep-copies
        and cost more than the rest of a small run's event handling)."""
        return {name: value for name in _EVENT_FIELDS if (value := getattr(self, name)) is not None}


_EVENT_FIELDS = tuple(field.name for field in fields(Event))


Listener = Callable[[Event], None]


class EventEmitter:
    """Numbers a run's events in order and hands them to a listener; safe to call from worker threads."""

    def __init__(self, run_id: str, listener: Listener | None) -> None:
        self.run_id = run_id
        self._listener = listener
        self._seq = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether anyone listens (callers on hot paths skip building events nobody reads)."""
        return self._listener is not None

    def emit(self, data: EventData) -> None:
        if self._listener is None:
            return
        with self._lock:
            self._seq += 1
            self._listener(Event.of(self.run_id, self._seq, time.time(), data))
