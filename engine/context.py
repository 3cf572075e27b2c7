"""What a running node may ask of the engine: its device, progress reporting, cancellation and nested graphs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.errors import RunCancelled
from nodeforge.engine.events import EventEmitter, NodeProgress, NodeWarning
from nodeforge.engine.keys import literal_material

if TYPE_CHECKING:
    from nodeforge.engine.document import GraphDocument
    from nodeforge.engine.files import FileAccess
    from nodeforge.engine.graph import GraphEnv
    from nodeforge.engine.models import ModelManager


@dataclass(frozen=True, slots=True)
class BoundValue:
    """A value together with the cache-key material that identifies it (see ``engine.keys``)."""

    value: Any
    material: str


class NodeModels:
    """A node's view of the model manager: models on the node's device, pinned until the node finishes."""

    __slots__ = ("_manager", "_device", "_emitter", "_node", "_held", "_declared")

    def __init__(self, manager: ModelManager, device: str, emitter: EventEmitter, node: str,
                 declared: list[str]) -> None:
        self._manager = manager
        self._device = device
        self._emitter = emitter
        self._node = node
        self._declared = declared
        self._held: list[str] = []

    def get(self, key: str, load: Callable[[str], Any]) -> Any:
        """The model named ``key`` on this node's device; ``load(device)`` builds it when it is not resident."""
        model = self._manager.get(self._device, key, load, self._emitter, self._node)
        if len(self._declared) == 1 and not self._held:
            self._manager.link_declared(self._declared[0], key)
        self._held.append(key)
        return model

    def evict(self, key: str) -> None:
        """Drop a model this node holds from its device, when the node left it in an unknown state."""
        if key in self._held:
            self._manager.release(self._device, key)
            self._held.remove(key)
        self._manager.evict(self._device, key, self._emitter)

    def release_all(self) -> None:
        for key in self._held:
            self._manager.release(self._device, key)
        self._held.clear()


GraphCaller = Callable[["NodeContext", "GraphDocument", Mapping[str, BoundValue]], dict[str, Any]]


class NodeContext:
    """Handed to ``Node.run``; one per node execution."""

    __slots__ = ("node_id", "node_type", "device", "env", "data_dir", "files", "models", "_emitter", "_cancel",
                 "_materials", "_literals", "_call_graph")

    def __init__(self, *, node_id: str, node_type: str, device: str, emitter: EventEmitter,
                 cancel: threading.Event, env: GraphEnv, data_dir: Path | None,
                 materials: Mapping[str, str], literals: Mapping[str, Any], call_graph: GraphCaller,
                 models: NodeModels, files: FileAccess) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.device = device
        self.env = env
        self.data_dir = data_dir
        self.files = files
        self.models = models
        self._emitter = emitter
        self._cancel = cancel
        self._materials = materials
        self._literals = literals
        self._call_graph = call_graph

    @property
    def run_id(self) -> str:
        return self._emitter.run_id

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise RunCancelled when the run was cancelled; long loops call this (``progress`` does it too)."""
        if self._cancel.is_set():
            raise RunCancelled(f"node '{self.node_id}' cancelled")

    def progress(self, step: int, total: int | None = None, text: str | None = None, *,
                 delta: str | None = None) -> None:
        """Report progress (a denoising step, a token) and stop here if the run was cancelled. ``text`` is a short
        status that replaces the last one; ``delta`` is streamed text that follows what came before (each event
        stays O(1), and listeners join the deltas)."""
        self.check_cancelled()
        self._emitter.emit(NodeProgress(node=self.node_id, step=step, total=total, text=text, delta=delta))

    def warn(self, message: str) -> None:
        """Tell the user about something the node changed or assumed, as a ``node.warning`` event."""
        self._emitter.emit(NodeWarning(node=self.node_id, text=message))

    def input_material(self, name: str) -> str:
        """The cache-key material of one input, so nested graphs key their nodes like the outer one."""
        material = self._materials.get(name)
        return material if material is not None else literal_material(self._literals[name])

    def call_graph(self, document: GraphDocument, inputs: Mapping[str, BoundValue]) -> dict[str, Any]:
        """Run a graph inside this node, sharing the cache, cancellation and devices; returns its outputs."""
        return self._call_graph(self, document, inputs)
