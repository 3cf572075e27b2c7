"""The Ray backend: the same graphs, scheduler and cache keys on a Ray cluster (``--backend ray``).

Ray is the process manager and the transport; the policy stays in the session (ready queue, placement by resident
model, one accelerator node per device). Each GPU of the cluster gets one long-lived ``DeviceWorker`` actor holding
that GPU's models, so a node placed where its model is resident finds it loaded; CPU nodes run as plain Ray tasks.
Outputs stay in the object store as one object per output port: they travel from worker to worker as references,
and reach the driver only when a graph output needs them. The driver owns those references, which form the memory
tier of the cache; the disk tier lives in the data dir, on storage every machine shares, written by the workers.

Events of remote nodes (progress, model loads, warnings) flow through a collector actor that the driver drains into
the run's event stream. Cancelling a run reaches a running actor call through its control thread. When a worker dies
under a node, the node fails with a device error, so the session retries it once on another device; new GPUs and
lost ones are taken into account at the start of each run.

Around this module (``engine/ray/``): ``cluster`` connects the driver, ``refcache`` is the cache of references,
``refs`` moves references in and out of values, ``relay`` carries remote events, ``recipe`` tells workers how to
rebuild the registry, and ``worker`` is what runs in the workers.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nodeforge.engine.backend import LocalBackend, Prepared, Produced, RunCache, RunScope
from nodeforge.engine.cache import ResultCache
from nodeforge.engine.config import device_models
from nodeforge.engine.errors import DeviceError, EngineError, RunCancelled, first_line
from nodeforge.engine.events import EventEmitter, ModelOffloaded
from nodeforge.engine.memory_modes import MemorySetting
from nodeforge.engine.ray.cluster import import_ray, start_ray
from nodeforge.engine.ray.recipe import WorkerRecipe, recipe_of
from nodeforge.engine.ray.refcache import RefCache
from nodeforge.engine.ray.refs import restore_refs, swap_refs
from nodeforge.engine.ray.relay import EventRelay
from nodeforge.engine.registry import Registry

if TYPE_CHECKING:
    from nodeforge.engine.compiler import CompiledNode, GraphEnv
    from nodeforge.engine.ray.worker import Report

POLL = 0.1


@dataclass
class _Worker:
    """A started DeviceWorker: its device name in the cluster, its actor and what the driver knows it holds."""

    name: str
    actor: str
    handle: Any
    node_id: str
    pid: int
    resident: set[str] = field(default_factory=set)
    loads: int = 0


@dataclass
class _Starting:
    actor: str
    handle: Any
    ready: Any
    node_id: str
    gpu: bool


@dataclass(slots=True)
class _Call:
    """One node execution on its way through the backend."""

    node: CompiledNode
    prepared: Prepared
    device: str
    values: dict[str, Any]
    scope: RunScope
    store: str | None


class RayBackend:
    """Runs nodes on a Ray cluster: ``address`` None starts a local cluster, ``auto`` joins the one this machine
    belongs to, ``HOST:PORT`` names its head, ``ray://HOST:10001`` goes through Ray Client. ``budget`` caps the
    bytes of models and results per device (default: 90% of each GPU's memory); ``memory`` is every GPU's memory
    mode (``--memory-mode``; default auto)."""

    def __init__(self, address: str | None = None, *, budget: int | None = None,
                 memory: MemorySetting | None = None, namespace: str = "nodeforge",
                 start_timeout: float = 180.0, init_options: dict[str, Any] | None = None) -> None:
        ray = import_ray()
        from nodeforge.engine.ray import worker as ray_worker

        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        self._release = threading.Event()
        if self._owns_ray:
            start_ray(ray, address, namespace, init_options or {}, self._release)
        self.namespace = ray.get_runtime_context().namespace or namespace
        self.budget = budget
        self.memory = memory
        self.start_timeout = start_timeout
        self.load_times: dict[str, float] = {}
        self.down: frozenset[str] = frozenset()
        self._id = uuid.uuid4().hex[:8]
        self._numbers = itertools.count()
        self._workers: dict[str, _Worker] = {}
        self._starting: list[_Starting] = []
        self._lock = threading.RLock()
        self._in_driver: set[str] = set()
        self._local = LocalBackend(device_models(["cpu"]))
        self._recipes: dict[int, tuple[Registry, WorkerRecipe]] = {}
        self._caches: dict[int, RefCache] = {}
        self._worker_class = ray.remote(concurrency_groups={"control": 1}, max_restarts=0,
                                        max_task_retries=0)(ray_worker.DeviceWorker)
        self._task = ray.remote(ray_worker.run_cpu_node)
        self._events = EventRelay(ray, f"nodeforge-events-{self._id}", self.namespace)
        try:
            self.refresh()
        except BaseException:
            self.close()
            raise

    # Devices.
    @property
    def devices(self) -> list[str]:
        return sorted(self._workers)

    def refresh(self) -> list[str]:
        """Poll the cluster: make sure every GPU has its worker (one per machine on a cluster without GPUs) and
        forget workers that died or whose machine left. Blocks only for workers this call had to start.

        Workers are named actors (one name per machine and GPU slot), so every driver of the cluster in the same
        namespace shares them and the models they hold."""
        ray = self._ray
        with self._lock:
            alive = {node["NodeID"]: node for node in ray.nodes() if node.get("Alive")}
            for name, worker in list(self._workers.items()):
                if worker.node_id not in alive:
                    del self._workers[name]
            gpus = {node_id: int(node.get("Resources", {}).get("GPU", 0)) for node_id, node in alive.items()}
            known = {worker.actor for worker in self._workers.values()}
            known |= {starting.actor for starting in self._starting}
            fresh = []
            for node_id in alive:
                for slot in range(gpus[node_id] if any(gpus.values()) else 1):
                    actor = f"nodeforge-device-{node_id[:12]}-{slot}"
                    if actor not in known:
                        fresh.append(self._start_worker(actor, node_id, gpu=gpus[node_id] > 0))
            self._collect(fresh)
            if not self._workers:
                raise EngineError(f"no Ray device worker started within {self.start_timeout:.0f} s (are the "
                                  "cluster's GPUs held by another program?)")
            self.down = frozenset()
            return self.devices

    def _start_worker(self, actor: str, node_id: str, *, gpu: bool) -> _Starting:
        """Create the named worker of one GPU slot of a machine, or join it when another driver already has."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        handle = self._worker_class.options(
            name=actor, namespace=self.namespace, get_if_exists=True, num_gpus=1 if gpu else 0, num_cpus=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
        ).remote(self.budget, self.memory)
        starting = _Starting(actor, handle, handle.describe.remote(), node_id, gpu)
        self._starting.append(starting)
        return starting

    def _collect(self, fresh: list[_Starting]) -> None:
        """Adopt workers that are up; wait for the ``fresh`` ones up to the start timeout."""
        ray = self._ray
        if fresh:
            ray.wait([starting.ready for starting in fresh], num_returns=len(fresh), timeout=self.start_timeout)
        refs = [starting.ready for starting in self._starting]
        done = set(ray.wait(refs, num_returns=len(refs), timeout=0)[0]) if refs else set()
        for starting in [starting for starting in self._starting if starting.ready in done]:
            self._starting.remove(starting)
            try:
                info = ray.get(starting.ready)
            except ray.exceptions.RayError as exc:
                logging.getLogger("nodeforge.ray").warning("a Ray device worker failed to start: %s", exc)
                continue
            kind = f"gpu{info['gpus'][0]}" if starting.gpu and info["gpus"] else "cpu"
            name = base = f"{info['ip']}/{kind}"
            for number in itertools.count(2):
                if name not in self._workers:
                    break
                name = f"{base}#{number}"
            self._workers[name] = _Worker(name, starting.actor, starting.handle, starting.node_id, info["pid"],
                                          set(info["resident"]), info["loads"])

    def resident_on(self, model: str) -> list[str]:
        return [name for name, worker in tuple(self._workers.items()) if model in worker.resident]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per device: the worker's process, its resident models (as last reported) and how many it loaded."""
        with self._lock:
            return {name: {"pid": worker.pid, "models": sorted(worker.resident), "loads": worker.loads}
                    for name, worker in sorted(self._workers.items())}

    def actor(self, device: str) -> Any:
        """The DeviceWorker actor of a device (to inspect or stop it)."""
        return self._workers[device].handle

    def evict(self, device: str, model: str, emitter: EventEmitter | None) -> None:
        worker = self._workers.get(device)
        if worker is None:
            return
        if model in worker.resident:
            worker.resident.discard(model)
            if emitter is not None:
                emitter.emit(ModelOffloaded(model=model, device=device, text="dropped"))
        worker.handle.evict.remote(model)

    def _lost(self, device: str) -> None:
        with self._lock:
            if self._workers.pop(device, None) is not None:
                self.down = self.down | {device}

    # Cache.
    def adapt_cache(self, cache: ResultCache | None) -> RunCache | None:
        if cache is None or isinstance(cache, RefCache):
            return cache
        with self._lock:
            adapted = self._caches.get(id(cache))
            if adapted is None or adapted.inner is not cache:
                adapted = self._caches[id(cache)] = RefCache(cache)
        return adapted

    def fetch(self, values: dict[str, Any]) -> dict[str, Any]:
        refs: list[Any] = []
        shaped = {name: swap_refs(value, refs) for name, value in values.items()}
        if not refs:
            return values
        got = self._ray.get(refs)
        return {name: restore_refs(value, got) for name, value in shaped.items()}

    # Running nodes.
    def invoke(self, node: CompiledNode, prepared: Prepared, device: str, values: dict[str, Any],
               scope: RunScope, store: str | None) -> Produced:
        """Run the node in its device's worker (a CPU node: a Ray task); the outputs stay in the object store as
        references, and the worker writes them to the run's disk tier when the run ``store``s them."""
        from nodeforge.engine.ray.worker import RemoteCall

        call = _Call(node, prepared, device, values, scope, store)
        spec = node.spec
        if spec.type in self._in_driver:
            return self._run_in_driver(call)
        if spec.cls.__module__ == "__main__":
            raise EngineError(f"{spec.type} is defined in the script being run, which Ray workers cannot import; "
                              "define it in a module or a plugin folder")
        worker = self._workers.get(call.device) if prepared.accelerated else None
        if prepared.accelerated and worker is None:
            raise DeviceError(f"{call.device} has no Ray worker any more")
        refs: list[Any] = []
        shipped = {name: swap_refs(value, refs) for name, value in values.items()}
        names = tuple(node.ports.outputs)
        extra = ({name: port.type for name, port in node.ports.inputs.items() if name not in spec.inputs}
                 if spec.cls.extra_inputs is not None else {})
        disk = scope.cache.disk_root if store is not None and isinstance(scope.cache, RefCache) else None
        call_id = f"{self._id}-{next(self._numbers)}"
        remote = RemoteCall(call_id, scope.emitter.run_id, node.id, spec.type, shipped, prepared, names, extra,
                            store, disk, str(scope.data_dir) if scope.data_dir else None, scope.files,
                            self._recipe(scope.env.registry),
                            self._library(scope.env), self._events.name, self.namespace)
        with self._events.listen(call_id, scope.emitter, device) as listening:
            if worker is not None:
                returned = worker.handle.run.options(num_returns=len(names) + 1).remote(remote, *refs)
            else:
                returned = self._task.options(num_cpus=1, max_retries=0,
                                              num_returns=len(names) + 1).remote(remote, *refs)
            returned = list(returned) if names else [returned]
            report = self._await(returned[-1], call, worker, call_id)
            self._events.wait_delivered(listening, report.events)
        if scope.details is not None:
            for name, data in report.details.items():
                scope.details(node.id, name, data)
        if worker is not None:
            with self._lock:
                worker.resident, worker.loads = set(report.resident), report.loads
                self.load_times.update(report.load_times)
        return self._outcome(call, report, dict(zip(names, returned[:-1], strict=True)))

    def _outcome(self, call: _Call, report: Report, outputs: dict[str, Any]) -> Produced:
        if report.status == "ok":
            return Produced(outputs, report.nbytes)
        if report.status == "driver":
            self._in_driver.add(call.node.spec.type)
            return self._run_in_driver(call)
        error = report.error or EngineError("the node failed in a Ray worker")
        if report.trace:
            error.__cause__ = RemoteTraceback(report.trace)
        if report.status == "cancelled":
            raise RunCancelled(f"node '{call.node.id}' cancelled")
        raise error

    def _await(self, ref: Any, call: _Call, worker: _Worker | None, call_id: str) -> Report:
        """Wait for a call's report, passing a cancellation on to the worker; a dead worker is a device error."""
        ray = self._ray
        cancelled = False
        while not ray.wait([ref], timeout=POLL)[0]:
            if call.scope.cancel.is_set() and not cancelled:
                cancelled = True
                if worker is not None:
                    worker.handle.cancel.remote(call_id)
                else:
                    ray.cancel(ref)
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            raise RunCancelled(f"node '{call.node.id}' cancelled") from None
        except ray.exceptions.RayActorError as exc:
            self._lost(call.device)
            raise DeviceError(f"the Ray worker of {call.device} died while running the node "
                              f"({first_line(exc)})") from None
        except ray.exceptions.RayError as exc:
            if cancelled:  # an interrupted task may also end with the interruption as its error (RayTaskError)
                raise RunCancelled(f"node '{call.node.id}' cancelled") from None
            raise EngineError(f"the Ray worker running the node failed: {type(exc).__name__}: {exc}") from None

    def _run_in_driver(self, call: _Call) -> Produced:
        """Nodes that run graphs (``ctx.call_graph``) run here, so their inner nodes are scheduled like the rest."""
        return self._local.invoke(call.node, call.prepared, "cpu", self.fetch(call.values), call.scope, call.store)

    def _recipe(self, registry: Registry) -> WorkerRecipe:
        """How workers rebuild ``registry``; worked out once per registry (a plugin reload makes a new one)."""
        found = self._recipes.get(id(registry))
        if found is not None and found[0] is registry:
            return found[1]
        recipe = recipe_of(registry)
        self._recipes[id(registry)] = (registry, recipe)
        return recipe

    @staticmethod
    def _library(env: GraphEnv) -> tuple[str, ...]:
        return tuple(str(folder) for folder in env.library.folders)

    def close(self) -> None:
        """Stop this driver's event collector and, when this backend started Ray, Ray itself (with every worker).
        On a cluster the device workers stay up for the other drivers of this process and namespace; they end
        with the process that created them."""
        ray = self._ray
        with self._lock:
            self._workers.clear()
            self._starting.clear()
        self._events.close()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._release.set()


class RemoteTraceback(Exception):
    """The traceback of a node's exception in the Ray worker where it was raised."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0])
