"""The Ray backend: the same graphs, scheduler and cache keys on a Ray cluster (``--backend ray``).

Ray is the process manager and the transport; the policy stays in the executor (ready queue, placement by resident
model, one accelerator node per device). Each GPU of the cluster gets one long-lived ``DeviceWorker`` actor holding
that GPU's models, so a node placed where its model is resident finds it loaded; CPU nodes run as plain Ray tasks.
Outputs stay in the object store as one object per output port: they travel from worker to worker as references,
and reach the driver only when a graph output needs them. The driver owns those references, which form the memory
tier of the cache; the disk tier lives in the data dir, on storage every machine shares, written by the workers.

Events of remote nodes (progress, model loads, warnings) flow through a collector actor that the driver drains into
the run's event stream. Cancelling a run reaches a running actor call through its control thread. When a worker dies
under a node, the node fails with a device error, so the executor retries it once on another device; new GPUs and
lost ones are taken into account at the start of each run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import itertools
import logging
import os
import sys
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backend import LocalBackend, Prepared, RunScope
from engine.cache import ResultCache
from engine.devices import default_budget
from engine.errors import DeviceError, EngineError, RunCancelled, first_line
from engine.events import EventEmitter
from engine.models import ModelManager
from engine.registry import ENTRY_POINT_GROUP, Registry
from engine.values import value_nbytes

if TYPE_CHECKING:
    from engine.graph import CompiledNode, GraphEnv
    from engine.ray_worker import Report, WorkerRecipe

RAY_MISSING = "the Ray backend needs Ray: pip install 'nodeforge[ray]' (ray==2.60.0)"
FORWARDED_ENV = ("NODEFORGE_MODELS_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_WAIT_POLICY")
EVENT_WAIT = 10.0
POLL = 0.1


def import_ray() -> Any:
    """The ray module, or a clear EngineError when the optional extra is not installed."""
    try:
        import ray
    except ImportError:
        raise EngineError(RAY_MISSING) from None
    return ray


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


@dataclass
class _Listening:
    """Events of one remote call, delivered to its run's emitter in the order the node emitted them."""

    emitter: EventEmitter
    device: str
    delivered: int = 0
    early: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)


class RefCache:
    """The cache as the driver sees it on a cluster: a memory tier of object references the driver owns (least
    recently used dropped beyond the byte budget, which frees the objects), in front of the disk tier the workers
    write. Values computed in the driver itself are written to disk here."""

    def __init__(self, inner: ResultCache) -> None:
        self.inner = inner
        self.budget = inner.memory.budget
        self.used = 0
        self.stats = inner.stats
        self._entries: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def disk_root(self) -> str | None:
        return str(self.inner.disk.root) if self.inner.disk is not None else None

    def present(self, keys: list[str]) -> set[str]:
        with self._lock:
            found = {key for key in keys if key in self._entries}
        return found | self.inner.present([key for key in keys if key not in found])

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.stats.memory_hits += 1
                return entry[0]
        return self.inner.get(key)

    def put(self, key: str, outputs: dict[str, Any], nbytes: int | None = None) -> None:
        """Keep outputs (references, or values computed in the driver) under ``key``; ``nbytes`` is what the
        referenced objects hold, as the worker measured them."""
        size = value_nbytes(outputs) if nbytes is None else nbytes
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.used -= old[1]
            if size <= self.budget:
                self._entries[key] = (outputs, size)
                self.used += size
            while self.used > self.budget:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.used -= evicted
            self.stats.writes += 1
        if nbytes is None and self.inner.disk is not None and not _references(outputs, []):
            self.inner.disk.put(key, outputs)

    def park(self, key: str, device: str) -> None:
        """Nothing to park: the objects already live in the object store, not on a device."""

    def flush(self) -> None:
        self.inner.flush()

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {**self.inner.info(), "memory_entries": len(self._entries), "memory_bytes": self.used}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.used = 0
        self.inner.clear()

    def close(self) -> None:
        self.inner.close()


class RayBackend:
    """Runs nodes on a Ray cluster: ``address`` None starts a local cluster, ``auto`` joins the one this machine
    belongs to, ``HOST:PORT`` names its head, ``ray://HOST:10001`` goes through Ray Client. ``budget`` caps the
    bytes of models and results per device (default: 90% of each GPU's memory)."""

    def __init__(self, address: str | None = None, *, budget: int | None = None, namespace: str = "nodeforge",
                 start_timeout: float = 180.0, init_options: dict[str, Any] | None = None) -> None:
        ray = import_ray()
        from engine import ray_worker

        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        self._release = threading.Event()
        if self._owns_ray:
            _start_ray(ray, address, namespace, init_options or {}, self._release)
        self.namespace = ray.get_runtime_context().namespace or namespace
        self.budget = budget
        self.start_timeout = start_timeout
        self.load_times: dict[str, float] = {}
        self.down: frozenset[str] = frozenset()
        self._id = uuid.uuid4().hex[:8]
        self._numbers = itertools.count()
        self._workers: dict[str, _Worker] = {}
        self._starting: list[_Starting] = []
        self._lock = threading.RLock()
        self._calls: dict[str, _Listening] = {}
        self._delivered = threading.Condition()
        self._in_driver: set[str] = set()
        self._local = LocalBackend(ModelManager({"cpu": default_budget("cpu")}))
        self._recipes: dict[int, tuple[Registry, WorkerRecipe]] = {}
        self._caches: dict[int, RefCache] = {}
        self._worker_class = ray.remote(concurrency_groups={"control": 1}, max_restarts=0,
                                        max_task_retries=0)(ray_worker.DeviceWorker)
        self._task = ray.remote(ray_worker.run_cpu_node)
        self._events_name = f"nodeforge-events-{self._id}"
        self._collector = ray.remote(ray_worker.EventCollector).options(
            name=self._events_name, namespace=self.namespace, num_cpus=0).remote()
        self._closed = threading.Event()
        self._drainer = threading.Thread(target=self._drain, name="nodeforge-ray-events", daemon=True)
        self._drainer.start()
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
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)).remote(self.budget)
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
                emitter.emit("model.offloaded", model=model, device=device, text="dropped")
        worker.handle.evict.remote(model)

    def _lost(self, device: str) -> None:
        with self._lock:
            if self._workers.pop(device, None) is not None:
                self.down = self.down | {device}

    # Cache.
    def adapt_cache(self, cache: ResultCache | None) -> ResultCache | None:
        if cache is None or isinstance(cache, RefCache):
            return cache
        with self._lock:
            adapted = self._caches.get(id(cache))
            if adapted is None or adapted.inner is not cache:
                adapted = self._caches[id(cache)] = RefCache(cache)
        return adapted  # type: ignore[return-value]

    def fetch(self, values: dict[str, Any]) -> dict[str, Any]:
        refs: list[Any] = []
        shaped = {name: _swap(value, refs) for name, value in values.items()}
        if not refs:
            return values
        got = self._ray.get(refs)
        return {name: _restore(value, got) for name, value in shaped.items()}

    # Running nodes.
    def invoke(self, node: CompiledNode, prepared: Prepared, device: str, values: dict[str, Any],
               scope: RunScope) -> dict[str, Any]:
        from engine.ray_worker import RemoteCall

        call = _Call(node, prepared, device, values, scope)
        spec = node.spec
        if spec.type in self._in_driver:
            return self._run_in_driver(call)
        if spec.cls.__module__ == "__main__":
            raise EngineError(f"{spec.type} is defined in the script being run, which Ray workers cannot import; "
                              "define it in a module or a plugin folder")
        worker = self._workers.get(call.device) if spec.cls.accelerator else None
        if spec.cls.accelerator and worker is None:
            raise DeviceError(f"{call.device} has no Ray worker any more")
        refs: list[Any] = []
        shipped = {name: _swap(value, refs, _marker) for name, value in values.items()}
        names = tuple(node.ports.outputs)
        extra = ({name: port.type for name, port in node.ports.inputs.items() if name not in spec.inputs}
                 if spec.cls.extra_inputs is not None else {})
        cache = scope.cache if not spec.cls.side_effects else None
        disk = cache.disk_root if isinstance(cache, RefCache) else None
        call_id = f"{self._id}-{next(self._numbers)}"
        remote = RemoteCall(call_id, scope.emitter.run_id, node.id, spec.type, shipped, prepared.literals,
                            prepared.materials, prepared.models, names, extra,
                            prepared.key if cache is not None else None, disk,
                            str(scope.data_dir) if scope.data_dir else None, scope.files,
                            self._recipe(scope.env.registry),
                            self._library(scope.env), self._events_name, self.namespace)
        listening = _Listening(scope.emitter, device)
        with self._delivered:
            self._calls[call_id] = listening
        try:
            if worker is not None:
                returned = worker.handle.run.options(num_returns=len(names) + 1).remote(remote, *refs)
            else:
                returned = self._task.options(num_cpus=1, max_retries=0,
                                              num_returns=len(names) + 1).remote(remote, *refs)
            returned = list(returned) if names else [returned]
            report = self._await(returned[-1], call, worker, call_id)
            with self._delivered:
                self._delivered.wait_for(lambda: listening.delivered >= report.events, EVENT_WAIT)
        finally:
            with self._delivered:
                self._calls.pop(call_id, None)
        if worker is not None:
            with self._lock:
                worker.resident, worker.loads = set(report.resident), report.loads
                self.load_times.update(report.load_times)
        return self._outcome(call, report, dict(zip(names, returned[:-1], strict=True)))

    def _outcome(self, call: _Call, report: Report, outputs: dict[str, Any]) -> dict[str, Any]:
        if report.status == "ok":
            cache, key = call.scope.cache, call.prepared.key
            if isinstance(cache, RefCache) and key is not None and not call.node.spec.cls.side_effects:
                cache.put(key, outputs, report.nbytes)
            return outputs
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
            raise EngineError(f"the Ray worker running the node failed: {type(exc).__name__}: {exc}") from None

    def _run_in_driver(self, call: _Call) -> dict[str, Any]:
        """Nodes that run graphs (``ctx.call_graph``) run here, so their inner nodes are scheduled like the rest."""
        return self._local.invoke(call.node, call.prepared, "cpu", self.fetch(call.values), call.scope)

    def _recipe(self, registry: Registry) -> WorkerRecipe:
        """How workers rebuild ``registry``; worked out once per registry (a plugin reload makes a new one)."""
        from engine.ray_worker import WorkerRecipe

        found = self._recipes.get(id(registry))
        if found is not None and found[0] is registry:
            return found[1]
        plugin_dirs, modules = _registry_sources(registry)
        recipe = WorkerRecipe(_plugin_token(plugin_dirs), plugin_dirs, modules)
        self._recipes[id(registry)] = (registry, recipe)
        return recipe

    @staticmethod
    def _library(env: GraphEnv) -> tuple[str, ...]:
        return tuple(str(folder) for folder in env.library.folders)

    # Events.
    def _drain(self) -> None:
        ray = self._ray
        while not self._closed.is_set():
            try:
                batch = ray.get(self._collector.take.remote(0.5))
            except Exception:
                if self._closed.wait(0.2):
                    return
                continue
            with self._delivered:
                for call_id, number, kind, fields in batch:
                    listening = self._calls.get(call_id)
                    if listening is not None:
                        listening.early[number] = (kind, fields)
                        self._deliver(listening)
                self._delivered.notify_all()

    @staticmethod
    def _deliver(listening: _Listening) -> None:
        while listening.delivered in listening.early:
            kind, fields = listening.early.pop(listening.delivered)
            if "device" in fields:
                fields["device"] = listening.device
            listening.emitter.emit(kind, **fields)  # type: ignore[arg-type]
            listening.delivered += 1

    def close(self) -> None:
        """Stop this driver's event collector and, when this backend started Ray, Ray itself (with every worker).
        On a cluster the device workers stay up for the other drivers of this process and namespace; they end
        with the process that created them."""
        ray = self._ray
        self._closed.set()
        with self._lock:
            self._workers.clear()
            self._starting.clear()
        with contextlib.suppress(Exception):
            ray.kill(self._collector)
        self._drainer.join(timeout=5)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._release.set()


class RemoteTraceback(Exception):
    """The traceback of a node's exception in the Ray worker where it was raised."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0])


def _start_ray(ray: Any, address: str | None, namespace: str, options: dict[str, Any],
               release: threading.Event) -> None:
    """Connect (or start a local cluster) from the main thread, else from a thread that lives until ``release``:
    the processes of a local cluster get a kill signal when the thread that started them ends (Ray sets
    PR_SET_PDEATHSIG), so a server that starts the backend from a short-lived thread would lose its cluster."""
    if threading.current_thread() is threading.main_thread():
        _connect(ray, address, namespace, options)
        return
    started = threading.Event()
    failed: list[BaseException] = []

    def own() -> None:
        try:
            _connect(ray, address, namespace, options)
        except BaseException as exc:
            failed.append(exc)
            return
        finally:
            started.set()
        release.wait()

    threading.Thread(target=own, name="nodeforge-ray-owner", daemon=True).start()
    started.wait()
    if failed:
        raise failed[0]


def _connect(ray: Any, address: str | None, namespace: str, options: dict[str, Any]) -> None:
    if address and address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise EngineError("a ray:// address needs Ray Client: pip install 'ray[client]==2.60.0'")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env_vars = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    settings: dict[str, Any] = {"namespace": namespace, "log_to_driver": False, "logging_level": logging.WARNING}
    if env_vars:
        settings["runtime_env"] = {"env_vars": env_vars}
    if address is None:
        settings["include_dashboard"] = False
    try:
        ray.init(address=address, **{**settings, **options})
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise EngineError(f"cannot connect to the Ray cluster at {address or 'a new local cluster'}: {exc}") from None


def _registry_sources(registry: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The plugin folders and importable modules a worker needs to rebuild ``registry`` (entry points aside:
    workers load those themselves)."""
    packages = tuple(entry.value.split(":")[0]
                     for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    folders: set[str] = set()
    modules: set[str] = set()
    for spec in registry:
        name = spec.cls.__module__
        if name == "__main__" or any(name == package or name.startswith(f"{package}.") for package in packages):
            continue
        top = name.split(".")[0]
        if top.startswith("nodeforge_plugin_"):
            origin = getattr(sys.modules.get(top), "__file__", None)
            if origin:
                path = Path(origin)
                folders.add(str(path.parent.parent if path.name == "__init__.py" else path.parent))
        else:
            modules.add(name)
    return tuple(sorted(folders)), tuple(sorted(modules))


def _plugin_token(folders: tuple[str, ...]) -> str:
    """Changes whenever a file in the plugin folders does (workers then import them again)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_size};".encode())
    return digest.hexdigest()[:16]


def _marker(index: int) -> Any:
    from engine.ray_worker import Arg

    return Arg(index)


def _references(value: Any, refs: list[Any]) -> list[Any]:
    _swap(value, refs)
    return refs


def _swap(value: Any, refs: list[Any], marker: Callable[[int], Any] | None = None) -> Any:
    """``value`` with each object reference (at the top or in a list) replaced by a marker of its index in
    ``refs``, where it is appended."""
    from ray import ObjectRef

    if isinstance(value, ObjectRef):
        refs.append(value)
        return marker(len(refs) - 1) if marker is not None else _Slot(len(refs) - 1)
    if type(value) is list:
        return [_swap(item, refs, marker) for item in value]
    if type(value) is dict:
        return {key: _swap(item, refs, marker) for key, item in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class _Slot:
    index: int


def _restore(value: Any, got: list[Any]) -> Any:
    if type(value) is _Slot:
        return got[value.index]
    if type(value) is list:
        return [_restore(item, got) for item in value]
    if type(value) is dict:
        return {key: _restore(item, got) for key, item in value.items()}
    return value


