"""What a running node may ask of the engine: its device, progress reporting, step previews, cancellation and
nested graphs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nodeforge.engine.errors import ModelResolveError, NodeError, RunCancelled
from nodeforge.engine.events import EventEmitter, NodeProgress, NodeWarning
from nodeforge.engine.keys import literal_material
from nodeforge.engine.model_source import ModelSource, ResolvedModel, model_key

if TYPE_CHECKING:
    from nodeforge.engine.compiler import GraphEnv
    from nodeforge.engine.declarations import ModelKind
    from nodeforge.engine.document import GraphDocument
    from nodeforge.engine.files import FileAccess
    from nodeforge.engine.memory_modes import DeviceMemory
    from nodeforge.engine.models import ModelManager
    from nodeforge.engine.previews import NodePreviews, PreviewMethod
    from nodeforge.engine.record import RunRecord
    from nodeforge.engine.values import Image

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BoundValue:
    """A value together with the cache-key material that identifies it (see ``engine.keys``)."""

    value: Any
    material: str


class NodeModels:
    """A node's view of the models: names resolved through the session's catalogue (under the run's path policy),
    loaded on the node's device and pinned until the node finishes. One rule gives a loaded model its identity:
    ``<kind>:<where its files are>``, so two names for the same files share one copy, and the name the node
    declared is linked to that identity for placement (``NodeSpec.models``). The kind of each model input is the
    one its declaration names (``ModelInput(kind=...)``)."""

    __slots__ = ("_manager", "_device", "_emitter", "_node", "_held", "_source", "_kinds", "_files",
                 "_data_dir")

    def __init__(self, manager: ModelManager, device: str, emitter: EventEmitter, node: str, *,
                 source: ModelSource, kinds: Mapping[str, ModelKind], files: FileAccess,
                 data_dir: Path | None) -> None:
        self._manager = manager
        self._device = device
        self._emitter = emitter
        self._node = node
        self._source = source
        self._kinds = kinds
        self._files = files
        self._data_dir = data_dir
        self._held: list[str] = []

    @property
    def memory(self) -> DeviceMemory:
        """This device's memory setting (``--memory-mode``), budget and bytes held now: how a large pipeline
        should sit on it (``nodes.models.diffusion.memory``)."""
        return self._manager.memory_of(self._device)

    @property
    def source(self) -> ModelSource:
        """The catalogue names resolve through (``check`` hooks get the same one)."""
        return self._source

    def kind_of(self, input: str) -> ModelKind:
        """The kind the node declared for the model input ``input``."""
        kind = self._kinds.get(input)
        if kind is None:
            raise NodeError(f"'{input}' is not declared as a model input (ModelInput)", input=input)
        return kind

    def resolve(self, name: str, *, input: str = "model", kind: ModelKind | None = None) -> ResolvedModel:
        """The files behind the model name given to ``input``, checked against the path policy first; a NodeError
        on ``input`` that says why when the name is forbidden or leads nowhere usable. The families of ``kind``
        (by default the one declared for ``input``) are the ones accepted."""
        families = (kind or self.kind_of(input)).families
        checked = self._files.model(name, input=input)
        try:
            with self._manager.loading():
                return self._source.resolve(checked, self._data_dir, families=families,
                                            relative_paths=not self._files.restricted)
        except ModelResolveError as exc:
            raise NodeError(str(exc), input=input) from None

    def remote(self, name: str) -> str | None:
        """The remote server's model name when ``name`` names one (``openai:<model>``), else None."""
        return self._source.remote_name(name.strip())

    def load(self, name: str, build: Callable[[ResolvedModel, str], T], *, input: str = "model",
             kind: ModelKind | None = None, variant: str = "") -> T:
        """The model ``name`` (given to ``input``) built by ``build`` as the input's declared kind (or ``kind``,
        for a second model behind one input, as an IP-Adapter's image encoder), on this node's device;
        ``build(resolved, device)`` runs only when it is not resident. ``variant`` tells apart builds of one
        kind from the same files that differ (a dtype, the family a VAE decodes for)."""
        chosen = kind or self.kind_of(input)
        with self._manager.loading():
            resolved = self.resolve(name, input=input, kind=chosen)
            key = model_key(f"{chosen.name}:{variant}" if variant else chosen.name, resolved)
            self._manager.link_declared(name, key)
            return self.hold(key, lambda device: build(resolved, device))

    def hold(self, key: str, build: Callable[[str], T]) -> T:
        """A model no catalogue names (built from code, not from files) under the identity ``key``, which is also
        the name the node declares for placement; ``build(device)`` runs only when it is not resident."""
        model: T = self._manager.get(self._device, key, build, self._emitter, self._node)
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


@dataclass(frozen=True)
class NestedRun:
    """What a graph run inside a node gives back: its outputs by name and its record (each inner node's status,
    device and seconds)."""

    outputs: dict[str, Any]
    record: RunRecord


GraphCaller = Callable[["NodeContext", "GraphDocument", Mapping[str, BoundValue]], NestedRun]
DetailSink = Callable[[str, dict[str, Any]], None]
"""Where ``ctx.record_detail(name, data)`` goes: the node's record in the run (``NodeRecord.details``)."""


class NodeContext:
    """Handed to ``Node.run``; one per node execution."""

    __slots__ = ("node_id", "node_type", "device", "env", "data_dir", "files", "models", "_emitter", "_cancel",
                 "_materials", "_literals", "_call_graph", "_previews", "_details")

    def __init__(self, *, node_id: str, node_type: str, device: str, emitter: EventEmitter,
                 cancel: threading.Event, env: GraphEnv, data_dir: Path | None,
                 materials: Mapping[str, str], literals: Mapping[str, Any], call_graph: GraphCaller,
                 models: NodeModels, files: FileAccess, previews: NodePreviews | None = None,
                 details: DetailSink | None = None) -> None:
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
        self._previews = previews
        self._details = details

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

    @property
    def preview_method(self) -> PreviewMethod | None:
        """How the run wants previews made (``engine.previews``); None when nobody keeps them."""
        return self._previews.method if self._previews is not None else None

    def preview_due(self) -> bool:
        """Whether to make a preview now: False when nobody keeps previews or the rate limit says not yet, so a
        node skips computing the picture. A node that asks and gets True should call ``preview`` next."""
        return self._previews is not None and self._previews.due()

    def preview(self, step: int, total: int | None, image: Image) -> None:
        """Publish a small picture of what the node is making at ``step`` (after ``preview_due`` said True): it is
        scaled down, stored by the run's preview sink, and announced as a ``node.preview`` event linking to it."""
        if self._previews is not None:
            self._previews.publish(step, total, image)

    def record_detail(self, name: str, data: Mapping[str, Any]) -> None:
        """Keep a small JSON object about how the node ran under ``name`` in its record (``details`` in the run
        record): e.g. the memory mode a diffusion node chose and the numbers it chose from. A later call with the
        same name replaces the earlier one."""
        if self._details is not None:
            self._details(name, dict(data))

    def warn(self, message: str) -> None:
        """Tell the user about something the node changed or assumed, as a ``node.warning`` event."""
        self._emitter.emit(NodeWarning(node=self.node_id, text=message))

    def input_material(self, name: str) -> str:
        """The cache-key material of one input, so nested graphs key their nodes like the outer one."""
        material = self._materials.get(name)
        return material if material is not None else literal_material(self._literals[name])

    def call_graph(self, document: GraphDocument, inputs: Mapping[str, BoundValue]) -> dict[str, Any]:
        """Run a graph inside this node, sharing the cache, cancellation and devices; returns its outputs."""
        return self._call_graph(self, document, inputs).outputs

    def run_graph(self, document: GraphDocument, inputs: Mapping[str, BoundValue]) -> NestedRun:
        """``call_graph`` that also gives the inner run's record."""
        return self._call_graph(self, document, inputs)
