"""Where a node executes: the one seam between the scheduler and the code that runs a node.

The session keeps the policy: which node runs next, on which device (``place`` by resident model), the cache, the
ledger and the event stream. A backend is transport only: it runs one node on the device it was given, hands back
its outputs, and answers residency queries for placement. ``LocalBackend`` runs the node in this process, on the
calling worker thread (the default); the Ray backend (``engine.ray.driver``) runs it in a per-GPU actor or a Ray
task. Both run the node with ``engine.node_call.run_call``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nodeforge.engine.context import GraphCaller
from nodeforge.engine.events import EventEmitter
from nodeforge.engine.node_call import run_call
from nodeforge.engine.previews import Previews

if TYPE_CHECKING:
    from nodeforge.engine.cache import ResultCache
    from nodeforge.engine.compiler import CompiledNode, GraphEnv
    from nodeforge.engine.files import FileAccess
    from nodeforge.engine.models import ModelManager


@dataclass(slots=True)
class Prepared:
    """A node's literal inputs after graph inputs and seeds are resolved, its key material and key, the models
    it declares (placement by residency), and whether it holds a device slot with these inputs (an accelerator
    node whose models are all remote does not: ``NodeSpec.needs_device``)."""

    literals: dict[str, Any]
    materials: dict[str, Any]
    key: str | None
    models: list[str]
    accelerated: bool = False


class RunCache(Protocol):
    """The result cache as a run uses it: a ``ResultCache``, or what a backend puts in its place (``adapt_cache``:
    the Ray backend's ``RefCache``)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def present(self, keys: list[str]) -> set[str]: ...

    def put(self, key: str, outputs: dict[str, Any], nbytes: int | None = None) -> None: ...

    def park(self, key: str, device: str) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class RunScope:
    """What every node of one run shares, handed to the backend with each node: the run's events, its
    cancellation, the graph environment, the data dir, how nodes open files (the path policy), the run's cache (a
    backend whose outputs live elsewhere learns from it where they are stored: the Ray workers write its disk
    tier), nested graphs, where step previews go (None: no node makes any), and where a node's recorded details go
    (``details(node_id, name, data)``: its record in the run)."""

    emitter: EventEmitter
    cancel: threading.Event
    env: GraphEnv
    data_dir: Path | None
    files: FileAccess
    cache: RunCache | None
    call_graph: GraphCaller
    previews: Previews | None = None
    details: Callable[[str, str, dict[str, Any]], None] | None = None


@dataclass(slots=True)
class Produced:
    """A node's outputs by name as a backend hands them back, and the bytes they hold when the backend measured
    them where they live (None: the cache measures them itself)."""

    outputs: dict[str, Any]
    nbytes: int | None


class Backend(Protocol):
    """What the session needs from whatever runs its nodes."""

    down: frozenset[str]

    @property
    def load_times(self) -> Mapping[str, float]:
        """Seconds each model took to load, by key (estimates read them)."""

    def resident_on(self, model: str) -> Sequence[str]:
        """Devices where a model (by key or declared name) is resident now: placement prefers them."""

    def refresh(self) -> list[str] | None:
        """At the start of a run: the devices now available, or None when they cannot change."""

    def adapt_cache(self, cache: ResultCache | None) -> RunCache | None:
        """The cache the session should consult (a backend may keep its memory tier elsewhere)."""

    def invoke(self, node: CompiledNode, prepared: Prepared, device: str, values: dict[str, Any],
               scope: RunScope, store: str | None) -> Produced:
        """Run the node on ``device`` with its input ``values``; its outputs. ``store`` is the key the run caches
        them under (None: not cached), for a backend that writes them where they are. Raises what the node raised
        (RunCancelled when cancelled, a DeviceError when the device failed under it)."""

    def evict(self, device: str, model: str, emitter: EventEmitter | None) -> None:
        """Drop a model from a device after a failure left it in an unknown state."""

    def fetch(self, values: dict[str, Any]) -> dict[str, Any]:
        """Output values as plain Python objects (a remote backend's references resolved)."""

    def close(self) -> None:
        """Give back what the backend holds outside this process (a cluster's workers)."""


class LocalBackend:
    """Runs nodes in this process on the run's worker threads, with models held by one ModelManager."""

    def __init__(self, models: ModelManager) -> None:
        self.models = models
        self.load_times = models.load_times
        self.resident_on = models.resident_on
        self.down: frozenset[str] = frozenset()

    def refresh(self) -> list[str] | None:
        return None

    def adapt_cache(self, cache: ResultCache | None) -> RunCache | None:
        return cache

    def close(self) -> None:
        """Nothing to give back: the models stay with the model manager, which outlives the backend."""

    def invoke(self, node: CompiledNode, prepared: Prepared, device: str, values: dict[str, Any],
               scope: RunScope, store: str | None) -> Produced:
        """Run the node on the calling thread (its outputs are here already: nothing to do with ``store``)."""
        return Produced(run_call(node.spec, node.id, prepared, values, device, self.models, scope,
                                 node.ports.inputs, node.ports.outputs, recheck=bool(node.dynamic)), None)

    def evict(self, device: str, model: str, emitter: EventEmitter | None) -> None:
        self.models.evict(device, model, emitter)

    def fetch(self, values: dict[str, Any]) -> dict[str, Any]:
        return values
