"""What runs inside Ray worker processes: one ``DeviceWorker`` actor per GPU (its models stay resident between
nodes) and the task that runs CPU nodes; their events reach the driver through ``engine.ray.relay``.

A node runs here with the same code as in-process (``engine.node_call.run_call``) against a registry this process
builds itself from the driver's ``WorkerRecipe`` (``engine.ray.recipe``), so plugins resolve in the worker.
Inputs arrive as Ray object references resolved by Ray; outputs leave as one object per output port plus a small
``Report``; the driver never needs the values unless a graph output asks for them.
"""

from __future__ import annotations

import functools
import os
import pickle
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from nodeforge.engine.backend import Prepared, RunScope
from nodeforge.engine.cache import DiskTier
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.config import device_models, worker_models
from nodeforge.engine.devices import detect_devices
from nodeforge.engine.errors import EngineError, NodeExecutionError, RemoteNodeError, RunCancelled
from nodeforge.engine.events import EventEmitter
from nodeforge.engine.files import FileAccess
from nodeforge.engine.memory_modes import MemorySetting
from nodeforge.engine.models import ModelManager
from nodeforge.engine.node_call import run_call
from nodeforge.engine.ports import make_port
from nodeforge.engine.ray.recipe import WorkerRecipe, registry_for
from nodeforge.engine.ray.refs import restore_refs
from nodeforge.engine.ray.relay import EventForwarder
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.values import move_value, value_nbytes


@dataclass(frozen=True, slots=True)
class RemoteCall:
    """One node execution as shipped to a worker: everything but the upstream values, which travel as arguments
    (``values`` holds a ``RefSlot`` for each). ``key``: what the run caches the outputs under, written here to the
    disk tier at ``cache_root`` (None: not cached)."""

    call_id: str
    run_id: str
    node_id: str
    node_type: str
    values: dict[str, Any]
    prepared: Prepared
    outputs: tuple[str, ...]
    extra_ports: dict[str, str]
    key: str | None
    cache_root: str | None
    data_dir: str | None
    files: FileAccess
    recipe: WorkerRecipe
    library: tuple[str, ...]
    events: str
    namespace: str


@dataclass(slots=True)
class Report:
    """How a remote node execution went; small, so the driver fetches it while the outputs stay in the store.
    ``status``: ok, failed, cancelled, or driver (the node calls graphs and must run in the driver)."""

    status: str
    seconds: float = 0.0
    events: int = 0
    nbytes: int = 0
    error: BaseException | None = None
    trace: str | None = None
    resident: list[str] = field(default_factory=list)
    load_times: dict[str, float] = field(default_factory=dict)
    loads: int = 0
    details: dict[str, dict[str, Any]] = field(default_factory=dict)


class NeedsDriver(Exception):
    """Raised by ``ctx.call_graph`` in a worker: nodes that run graphs are scheduled by the driver."""


@functools.lru_cache(maxsize=4)
def _disk(root: str) -> DiskTier:
    return DiskTier(Path(root))


def _needs_driver(*_: Any) -> Any:
    raise NeedsDriver


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling unchanged, else a RemoteNodeError with the same text."""
    try:
        clone = pickle.loads(pickle.dumps(exc))
        if type(clone) is type(exc) and str(clone) == str(exc):
            return exc
    except Exception:
        pass
    text = str(exc) or type(exc).__name__
    if not isinstance(exc, EngineError):
        text = f"{type(exc).__name__}: {text}"
    return RemoteNodeError(text, getattr(exc, "input", None))


def execute(call: RemoteCall, args: tuple[Any, ...], device: str, models: ModelManager,
            cancel: threading.Event) -> Any:
    """Run one node in this process; returns its outputs (one value per output port) followed by a Report."""
    registry = registry_for(call.recipe)
    spec = registry.get(call.node_type)
    env = GraphEnv(registry, GraphLibrary([Path(folder) for folder in call.library]))
    values = {name: restore_refs(value, args) for name, value in call.values.items()}
    forward = EventForwarder(call.call_id, call.events, call.namespace)
    emitter = EventEmitter(call.run_id, forward)
    data_dir = Path(call.data_dir) if call.data_dir else None
    report = Report("ok")
    scope = RunScope(emitter, cancel, env, data_dir, call.files, None, _needs_driver,
                     details=lambda _node, name, data: report.details.__setitem__(name, data))
    ports = {name: make_port(name, port_type) for name, port_type in call.extra_ports.items()}
    outputs: dict[str, Any] = {}
    started = time.perf_counter()
    loads_before = models.loads
    try:
        outputs = run_call(spec, call.node_id, call.prepared, values, device, models, scope, ports, call.outputs)
    except NeedsDriver:
        report.status = "driver"
    except RunCancelled as exc:
        report.status, report.error = "cancelled", exc
    except Exception as exc:
        cause = exc.cause if isinstance(exc, NodeExecutionError) else exc
        report.status, report.error, report.trace = "failed", _portable(cause), traceback.format_exc()
    report.seconds = time.perf_counter() - started
    if report.status == "ok":
        outputs = {name: move_value(outputs[name], "cpu") for name in call.outputs}
        report.nbytes = value_nbytes(outputs)
        if call.key is not None and call.cache_root is not None:
            disk = _disk(call.cache_root)
            disk.put(call.key, outputs)
            disk.flush()
    if models.loads != loads_before:
        report.load_times = dict(models.load_times)
    report.events = forward.sent
    values_out = [outputs.get(name) for name in call.outputs]
    return (*values_out, report) if values_out else report


class DeviceWorker:
    """One GPU of the cluster (Ray sets its visible device, so it is ``cuda:0`` here): holds that GPU's resident
    models in its own ModelManager and runs the accelerator nodes the driver places on it, one at a time."""

    def __init__(self, budget: int | None = None, memory: MemorySetting | None = None) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.device = detect_devices()[0]
        self.models = worker_models(self.device, budget, memory)
        self._declared: set[str] = set()
        self._cancels: dict[str, threading.Event] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """Where this worker runs: the node's address, the GPU ids Ray gave it, the torch device, the process."""
        return {"ip": ray.util.get_node_ip_address(), "gpus": [str(gpu) for gpu in ray.get_gpu_ids()],
                "device": self.device, "pid": os.getpid(), "resident": self.resident(), "loads": self.models.loads}

    def run(self, call: RemoteCall, *args: Any) -> Any:
        with self._lock:
            cancel = self._cancels[call.call_id] = threading.Event()
            if call.call_id in self._cancelled:
                cancel.set()
        self._declared.update(call.prepared.models)
        try:
            result = execute(call, args, self.device, self.models, cancel)
        finally:
            with self._lock:
                self._cancels.pop(call.call_id, None)
                self._cancelled.discard(call.call_id)
        report = result[-1] if isinstance(result, tuple) else result
        report.resident = self.resident()
        report.loads = self.models.loads
        return result

    @ray.method(concurrency_group="control")
    def cancel(self, call_id: str) -> None:
        """Stop a running node at its next progress point (runs beside ``run`` in its own thread)."""
        with self._lock:
            flag = self._cancels.get(call_id)
            if flag is None:
                self._cancelled.add(call_id)
            else:
                flag.set()

    def evict(self, model: str) -> list[str]:
        """Drop a model after a failure; returns what stays resident."""
        self.models.evict(self.device, model)
        return self.resident()

    def resident(self) -> list[str]:
        """Model keys resident here, plus the declared names that resolved to one of them."""
        keys = set(self.models.devices[self.device].resident)
        keys.update(name for name in self._declared if self.models.resident_on(name))
        return sorted(keys)


@functools.lru_cache(maxsize=1)
def _cpu_models() -> ModelManager:
    return device_models(["cpu"])


def run_cpu_node(call: RemoteCall, *args: Any) -> Any:
    """A CPU node as a plain Ray task (cancelled by ``ray.cancel``, which interrupts it)."""
    return execute(call, args, "cpu", _cpu_models(), threading.Event())

