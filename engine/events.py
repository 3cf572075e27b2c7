"""The one typed event stream: CLI progress, server-sent events and run history all read it.

Each event is bounded in size: it describes one change (a node started, a step advanced), never the whole graph;
streamed text comes as a ``delta`` (the new piece), never as the text so far. The nodes a run will not execute
because of the cache come as ``nodes.cached`` events of up to ``CACHED_PER_EVENT`` ids each, so a fully cached run
costs a few bytes per node rather than an event per node.

A listener gets an ``Event``: the envelope (run, seq, at) around the typed payload, one class per kind, so it
matches on classes (``match event.data: case NodeFinished(node=node, seconds=seconds): ...``). Each class declares
its kind string once; the list of kinds, the node statuses and the parsing of stored events all come from
``EVENTS``, the table of the classes. Payload classes are keyword-only and declare their fields in the order they
have on the wire (``Event.to_dict``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast, get_args

if TYPE_CHECKING:  # annotations only: a process that never makes a record (`nodeforge --help`) skips pydantic
    from nodeforge.engine.record import NodeStatus, RunStatus

CACHED_PER_EVENT = 1000
"""Most node ids one ``nodes.cached`` event lists: a larger graph's cached nodes come in several events."""
ENVELOPE = ("kind", "run", "seq", "at")
"""The keys every event has on the wire, first and in this order; the payload's fields follow."""


class Payload:
    """What every event class declares: its kind on the wire and the status it gives the node(s) it names."""

    __slots__ = ()
    kind: ClassVar[str]
    node_status: ClassVar[NodeStatus | None] = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunQueued(Payload):
    """The server accepted a run (the server makes this one)."""

    kind: ClassVar[str] = "run.queued"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Payload):
    kind: ClassVar[str] = "run.started"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStarted(Payload):
    kind: ClassVar[str] = "node.started"
    node_status: ClassVar[NodeStatus | None] = "running"
    node: str
    node_type: str
    device: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeProgress(Payload):
    """A step advanced; ``text`` replaces the last status, ``delta`` is streamed text (the new piece only)."""

    kind: ClassVar[str] = "node.progress"
    node: str
    step: int
    total: int | None = None
    text: str | None = None
    delta: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodePreview(Payload):
    """A small picture of what a node is making, at ``step`` of ``total`` (a diffusion node's current latent):
    ``link`` leads to the stored picture (a URL on the server, a file path with ``nodeforge run --previews``) of
    ``width`` x ``height`` pixels. The picture never travels in the event (``engine.previews``)."""

    kind: ClassVar[str] = "node.preview"
    node: str
    step: int
    total: int | None = None
    link: str
    width: int
    height: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NodesCached(Payload):
    """Nodes that will not run because their result, or everything that depends on them, is cached: one event for
    up to ``CACHED_PER_EVENT`` of them (ids only: a fully cached run's events stay a few bytes per node)."""

    kind: ClassVar[str] = "nodes.cached"
    node_status: ClassVar[NodeStatus | None] = "cached"
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCached(Payload):
    """One cached node: what runs stored before 0.2 hold instead of ``nodes.cached``; read, never made."""

    kind: ClassVar[str] = "node.cached"
    node_status: ClassVar[NodeStatus | None] = "cached"
    node: str
    node_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFinished(Payload):
    kind: ClassVar[str] = "node.finished"
    node_status: ClassVar[NodeStatus | None] = "succeeded"
    node: str
    node_type: str
    device: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFailed(Payload):
    kind: ClassVar[str] = "node.failed"
    node_status: ClassVar[NodeStatus | None] = "failed"
    node: str
    node_type: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSkipped(Payload):
    """``error`` says why (a failed ancestor)."""

    kind: ClassVar[str] = "node.skipped"
    node_status: ClassVar[NodeStatus | None] = "skipped"
    node: str
    node_type: str
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeWarning(Payload):
    kind: ClassVar[str] = "node.warning"
    node: str
    node_type: str | None = None
    device: str | None = None
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelLoaded(Payload):
    """``text`` is "from cpu" when the model came back from CPU RAM rather than from its loader."""

    kind: ClassVar[str] = "model.loaded"
    node: str | None = None
    device: str
    text: Literal["from cpu"] | None = None
    seconds: float
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelOffloaded(Payload):
    kind: ClassVar[str] = "model.offloaded"
    device: str
    text: Literal["to cpu", "dropped"]
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Payload):
    kind: ClassVar[str] = "run.finished"
    error: str | None = None
    status: RunStatus


EventData = (RunQueued | RunStarted | NodeStarted | NodeProgress | NodePreview | NodesCached | NodeCached
             | NodeFinished | NodeFailed | NodeSkipped | NodeWarning | ModelLoaded | ModelOffloaded | RunFinished)
"""Every event class, written once: ``EVENTS`` and the kinds are built from it."""


class EventTypes:
    """The event classes by kind: the one table the kinds, the node statuses they give and the parsing of events
    that travelled as JSON come from. Built from the classes; a class takes part by being given here."""

    def __init__(self, *classes: type[Payload]) -> None:
        self.classes: Mapping[str, type[Payload]] = MappingProxyType({cls.kind: cls for cls in classes})
        if len(self.classes) != len(classes):
            raise ValueError("two event classes declare the same kind")
        self._fields = {cls: tuple(field.name for field in fields(cls)) for cls in classes}  # type: ignore[arg-type]
        self.node_status: Mapping[str, NodeStatus] = MappingProxyType(
            {cls.kind: cls.node_status for cls in classes if cls.node_status is not None})
        """The one rule from an event to a node's status: the CLI's table, the server's run store and the editor
        (which reads it from ``GET /api/nodes``) all apply it."""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.classes)

    def fields(self, data: Payload) -> dict[str, Any]:
        """A payload's fields that are set, by name, in wire order (read one by one: ``asdict`` deep-copies and
        cost more than the rest of a small run's event handling)."""
        return {name: value for name in self._fields[type(data)] if (value := getattr(data, name)) is not None}

    def data(self, kind: str, values: Mapping[str, Any]) -> EventData:
        """The typed payload of an event that travelled as its kind and fields (JSON lists back as tuples)."""
        cls = self.classes[kind]
        return cast(EventData, cls(**{name: tuple(value) if isinstance(value, list) else value
                                      for name, value in values.items()}))

    def parse(self, wire: Mapping[str, Any]) -> Event:
        """An event from its wire shape (``Event.to_dict``)."""
        values = {name: value for name, value in wire.items() if name not in ENVELOPE}
        return Event(wire["run"], wire["seq"], wire["at"], self.data(wire["kind"], values))


EVENTS = EventTypes(*get_args(EventData))
NODE_STATUS = EVENTS.node_status


def status_changes(data: Payload) -> list[tuple[str, NodeStatus]]:
    """(node, status) for each node an event moves; empty for events that move none."""
    status = data.node_status
    if status is None:
        return []
    match data:
        case NodesCached(nodes=nodes):
            return [(node_id, status) for node_id in nodes]
        case NodeStarted(node=node) | NodeFinished(node=node) | NodeFailed(node=node) | NodeSkipped(node=node) \
                | NodeCached(node=node):
            return [(node, status)]
    return []


@dataclass(frozen=True, slots=True)
class Event:
    """One event as listeners see it: the envelope (run, seq, at) and the typed payload of its kind."""

    run: str
    seq: int
    at: float
    data: EventData

    @property
    def kind(self) -> str:
        return self.data.kind

    def to_dict(self) -> dict[str, Any]:
        """The wire shape (SSE, the run store, ``--events``): the envelope, then the payload's fields that are
        set."""
        return {"kind": self.data.kind, "run": self.run, "seq": self.seq, "at": self.at,
                **EVENTS.fields(self.data)}


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
            self._listener(Event(self.run_id, self._seq, time.time(), data))
