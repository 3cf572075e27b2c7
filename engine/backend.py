"""Where a node executes: the one seam between the scheduler and the code that runs a node.

The session keeps the policy: which node runs next, on which device (``place`` by resident model), the ledger and
the event stream. A backend runs one node on the device it was given and answers residency queries for placement.
``LocalBackend`` runs the node in this process, on the calling worker thread (the default); the Ray backend
(``engine.ray.driver``) runs it in a per-GPU actor or a Ray task. Both execute the node with ``run_node``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from nodeforge.engine.context import GraphCaller, NodeContext, NodeModels
from nodeforge.engine.declared_checks import model_problems
from nodeforge.engine.errors import EngineError, NodeExecutionError
from nodeforge.engine.events import EventEmitter
from nodeforge.engine.previews import NodePreviews, Previews
from nodeforge.engine.values import tensor_nbytes

if TYPE_CHECKING:
    from nodeforge.engine.cache import ResultCache
    from nodeforge.engine.compiler import CompiledNode, GraphEnv
    from nodeforge.engine.files import FileAccess
    from nodeforge.engine.models import ModelManager
    from nodeforge.engine.node import NodeSpec
    from nodeforge.engine.ports import Port


@dataclass(slots=True)
class Prepared:
    """A node's literal inputs after graph inputs and seeds are resolved, its key material and key, and the
    models it declares (placement by residency)."""

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

    def put(self, key: str, outputs: dict[str, Any]) -> None: ...

    def park(self, key: str, device: str) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class RunScope:
    """What every node of one run shares, handed to the backend with each node: the run's events, its
    cancellation, the graph environment, the data dir, how nodes open files (the path policy), the cache results are
    stored in, nested graphs, where step previews go (None: no node makes any), and where a node's recorded
    details go (``details(node_id, name, data)``: its record in the run)."""

    emitter: EventEmitter
    cancel: threading.Event
    env: GraphEnv
    data_dir: Path | None
    files: FileAccess
    cache: RunCache | None
    call_graph: GraphCaller
    previews: Previews | None = None
    details: Callable[[str, str, dict[str, Any]], None] | None = None


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
               scope: RunScope) -> dict[str, Any]:
        """Run the node on ``device`` with its input ``values``; its outputs by name, stored in ``scope.cache``
        under ``prepared.key`` when it is cacheable. Raises what the node raised (RunCancelled when cancelled, a
        DeviceError when the device failed under it)."""

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
               scope: RunScope) -> dict[str, Any]:
        """Run the node on the calling thread; cached results produced on an accelerator count against that
        device's ledger until parked in RAM."""
        spec = node.spec
        models = NodeModels(self.models, device, scope.emitter, node.id, source=scope.env.registry.model_source,
                            kinds=spec.model_kinds, files=scope.files, data_dir=scope.data_dir)
        ctx = NodeContext(node_id=node.id, node_type=spec.type, device=device, emitter=scope.emitter,
                          cancel=scope.cancel, env=scope.env, data_dir=scope.data_dir, materials=prepared.materials,
                          literals=prepared.literals, call_graph=scope.call_graph, models=models,
                          files=scope.files,
                          previews=NodePreviews(scope.previews, scope.emitter, node.id) if scope.previews else None,
                          details=functools.partial(scope.details, node.id) if scope.details else None)
        try:
            outputs = run_node(spec, node.id, values, ctx, node.ports.inputs, node.ports.outputs,
                               recheck=bool(node.dynamic))
        finally:
            models.release_all()
        key, cache = prepared.key, scope.cache
        if key is not None and not spec.cls.side_effects and cache is not None:
            cache.put(key, outputs)
            if spec.cls.accelerator:
                self.models.hold_result(device, key, tensor_nbytes(outputs), lambda: cache.park(key, "cpu"))
        return outputs

    def evict(self, device: str, model: str, emitter: EventEmitter | None) -> None:
        self.models.evict(device, model, emitter)

    def fetch(self, values: dict[str, Any]) -> dict[str, Any]:
        return values


def run_node(spec: NodeSpec, node_id: str, values: dict[str, Any], ctx: NodeContext,
             input_ports: Mapping[str, Port], output_names: Collection[str], *, recheck: bool = True) -> dict[str, Any]:
    """Validate a node's input values, run it and collect its outputs by name: the same code in every backend.
    ``input_ports`` must hold the ports of extra inputs; ``output_names`` are the node's output ports. With
    ``recheck`` (some input came from a link or a graph input, unseen by validation) the node's own ``check``
    runs again on the values it is about to get, so ``run`` never repeats what ``check`` says."""
    try:
        if spec.cls.extra_inputs is not None:
            for name in values.keys() - spec.inputs.keys():
                values[name] = input_ports[name].validate_literal(values[name])
        inputs = spec.cls.Inputs.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = str(err["loc"][0]) if err["loc"] else None
        message = err["msg"]
        if where is not None and where in values and values[where] is None:  # an optional output that was empty
            message = "the output linked here gave no value (e.g. video.load's audio for a file without sound)"
        raise NodeExecutionError(node_id, spec.type, InputProblem(where, message)) from None
    if recheck:
        given = {**inputs.__dict__, **(inputs.model_extra or {})}  # pydantic keeps the fields in __dict__
        for where, message in model_problems(spec, given, ctx.models.source):
            raise NodeExecutionError(node_id, spec.type, InputProblem(where, message))
        if spec.checks:
            for where, message in spec.instance.check(given, frozenset(values), ctx.models.source):
                raise NodeExecutionError(node_id, spec.type, InputProblem(where, message))
    result = spec.instance.run(inputs, ctx)
    if result.model_extra:
        outputs = {**{name: getattr(result, name) for name in spec.outputs}, **result.model_extra}
        missing = [name for name in output_names if name not in outputs]
        if missing:
            raise EngineError(f"the node returned no value for output(s) {', '.join(missing)}")
        return outputs
    return {name: getattr(result, name) for name in output_names}


class InputProblem(EngineError):
    """An input value that does not fit its port, found just before the node runs."""

    def __init__(self, input_name: str | None, message: str) -> None:
        self.input = input_name
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return InputProblem, (self.input, str(self))
