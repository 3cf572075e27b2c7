"""Loaded models, per device, within a byte budget: the model manager.

Nodes never call it directly: a node loads through its context (``ctx.models.load(name, build)`` for a catalogue
name, ``ctx.models.hold(key, build)`` for a model built from code; ``engine.context.NodeModels``), which resolves
the name and calls ``ModelManager.get(device, key, load)``. The manager returns the resident copy on that device,
brings a copy parked in CPU RAM back, or loads it (one load at a time, under ``loading()``: diffusers and
accelerate loading is not thread-safe). When a load would exceed the device's budget, cached results held on the
device are parked first, then the least recently used unpinned models are offloaded to CPU RAM (when they can
move) or dropped. A model is pinned from ``get`` until ``release`` (the context releases a node's models when it
finishes) and a pinned model is never evicted. A load that fails leaves nothing behind.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nodeforge.engine.errors import EngineError, ModelBudgetError
from nodeforge.engine.events import EventEmitter, ModelLoaded, ModelOffloaded
from nodeforge.engine.memory_modes import DeviceMemory, MemorySetting

Loader = Callable[[str], Any]


def module_nbytes(model: Any) -> int:
    """Bytes of parameters and buffers of a torch module, a diffusers pipeline (its modules) or a list of them."""
    modules = []
    components = getattr(model, "components", None)
    if isinstance(components, dict):
        modules = list(components.values())
    elif isinstance(model, list | tuple):
        modules = list(model)
    else:
        modules = [model]
    total = 0
    for module in modules:
        parameters = getattr(module, "parameters", None)
        buffers = getattr(module, "buffers", None)
        if callable(parameters):
            total += sum(p.numel() * p.element_size() for p in parameters())
        if callable(buffers):
            total += sum(b.numel() * b.element_size() for b in buffers())
    return total


def device_nbytes(model: Any) -> int:
    """Bytes a model keeps on its device: what it says itself (``device_nbytes``: a pipeline offloaded to CPU RAM
    keeps one component or one layer there at a time), else all its weights."""
    own = getattr(model, "device_nbytes", None)
    return own if isinstance(own, int) else module_nbytes(model)


def parkable(model: Any) -> bool:
    """Whether a model can be parked in CPU RAM and moved back (``to``), unless it says not (``parkable``: an
    offloaded pipeline's hooks are bound to its device, so it is dropped and loaded again instead)."""
    return callable(getattr(model, "to", None)) and getattr(model, "parkable", True) is not False


def move_model(model: Any, device: str) -> Any:
    """``model.to(device)`` for anything that has it (torch modules, diffusers pipelines); else unchanged."""
    mover = getattr(model, "to", None)
    return mover(device) if callable(mover) else model


def _physical(device: str) -> str:
    """Virtual CPU devices (``cpu:0``) are the CPU to torch."""
    return "cpu" if device.startswith("cpu") else device


@dataclass(slots=True)
class _Resident:
    model: Any
    nbytes: int
    movable: bool
    pins: int = 0


@dataclass
class DeviceModels:
    """One device's ledger: resident models and cached results held there (least recently used first), against
    one byte budget, so a long graph cannot exhaust the device through its cache."""

    budget: int
    memory: MemorySetting = MemorySetting()
    resident: OrderedDict[str, _Resident] = field(default_factory=OrderedDict)
    results: OrderedDict[str, tuple[int, Callable[[], None]]] = field(default_factory=OrderedDict)

    @property
    def used(self) -> int:
        return sum(entry.nbytes for entry in self.resident.values()) + self.results_bytes

    @property
    def results_bytes(self) -> int:
        return sum(size for size, _ in self.results.values())


class ModelManager:
    """Resident models for a set of devices; one instance lives as long as the session (a server's lifetime)."""

    def __init__(self, budgets: dict[str, int], *, cpu_budget: int = 16 << 30,
                 memory: dict[str, MemorySetting] | None = None) -> None:
        memory = memory or {}
        self.devices = {device: DeviceModels(budget, memory.get(device, MemorySetting()))
                        for device, budget in budgets.items()}
        self.offloaded: OrderedDict[str, _Resident] = OrderedDict()
        self.cpu_budget = cpu_budget
        self.loads = 0
        self.load_times: dict[str, float] = {}
        self._declared: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._load_lock = threading.RLock()

    def loading(self) -> threading.RLock:
        """The lock one model is made under at a time, in this process: resolving a name may build its files, and
        building or loading a model touches process-wide state (accelerate's empty-weights patch of
        ``nn.Module.register_parameter``, torch's global RNG), so a model made in one thread while another is
        loaded came out on the meta device. Re-entrant: ``get`` takes it again to load."""
        return self._load_lock

    def resident_on(self, name: str) -> list[str]:
        """Devices where a model is resident now, by its key or by the name a node declared for it (the
        scheduler places nodes by this)."""
        with self._lock:
            keys = {name} | self._declared.get(name, set())
            return [device for device, models in self.devices.items() if keys & models.resident.keys()]

    def link_declared(self, declared: str, key: str) -> None:
        """Remember that a node declaring model ``declared`` loaded it under ``key`` (a resolved name)."""
        if declared != key:
            with self._lock:
                self._declared.setdefault(declared, set()).add(key)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per device: budget, bytes used, resident models and results held (``nodeforge devices``, the API)."""
        with self._lock:
            return {device: {"budget": models.budget, "used": models.used, "models": list(models.resident),
                             "results": len(models.results), "results_bytes": models.results_bytes,
                             "memory_mode": str(models.memory)}
                    for device, models in self.devices.items()}

    def memory_of(self, device: str) -> DeviceMemory:
        """A device's memory setting, budget and the bytes held against it now (diffusion nodes plan by it)."""
        with self._lock:
            models = self._models(device)
            return DeviceMemory(device, models.budget, models.used, models.memory)

    def hold_result(self, device: str, key: str, nbytes: int, park: Callable[[], None]) -> None:
        """Charge a cached result kept on ``device`` to its ledger; ``park`` moves it to CPU RAM when the device
        needs the room (older results are parked first, before any model is evicted)."""
        if nbytes <= 0:
            return
        with self._lock:
            models = self.devices.get(device)
            if models is None:
                return
            models.results.pop(key, None)
            models.results[key] = (nbytes, park)
            self._make_room(models, 0)

    def _make_room(self, models: DeviceModels, needed: int) -> None:
        """Park results (oldest first) until ``needed`` more bytes fit, or no result is left on the device."""
        while models.results and models.used + needed > models.budget:
            _, (_, park) = models.results.popitem(last=False)
            park()

    def get(self, device: str, key: str, load: Loader, emitter: EventEmitter | None = None,
            node: str | None = None) -> Any:
        """The model ``key`` on ``device``, pinned until ``release``; loads it (``load(device)``) when needed."""
        with self._lock:
            models = self._models(device)
            entry = models.resident.get(key)
            if entry is not None:
                models.resident.move_to_end(key)
                entry.pins += 1
                return entry.model
            parked = self.offloaded.pop(key, None)
        if parked is not None:
            return self._restore(device, key, parked, emitter, node)
        with self._load_lock:
            with self._lock:
                entry = self._models(device).resident.get(key)
                if entry is not None:
                    entry.pins += 1
                    return entry.model
            started = time.perf_counter()
            model = load(_physical(device))
            nbytes = device_nbytes(model)
            seconds = time.perf_counter() - started
            self.loads += 1
            self.load_times[key] = seconds
        with self._lock:
            self._admit(device, key, _Resident(model, nbytes, parkable(model), pins=1),
                        emitter, node)
        if emitter is not None:
            emitter.emit(ModelLoaded(model=key, device=device, node=node, seconds=round(seconds, 6)))
        return model

    def release(self, device: str, key: str) -> None:
        with self._lock:
            entry = self._models(device).resident.get(key)
            if entry is not None and entry.pins > 0:
                entry.pins -= 1

    def evict(self, device: str, key: str, emitter: EventEmitter | None = None) -> None:
        """Drop a model (by key or declared name) from a device, after a failure left it in an unknown state."""
        with self._lock:
            resident = self._models(device).resident
            for name in sorted(({key} | self._declared.get(key, set())) & resident.keys()):
                del resident[name]
                if emitter is not None:
                    emitter.emit(ModelOffloaded(model=name, device=device, text="dropped"))

    def _models(self, device: str) -> DeviceModels:
        models = self.devices.get(device)
        if models is None:
            raise EngineError(f"device '{device}' is not managed (devices: {', '.join(self.devices)})")
        return models

    def _restore(self, device: str, key: str, parked: _Resident, emitter: EventEmitter | None,
                 node: str | None) -> Any:
        started = time.perf_counter()
        parked.model = move_model(parked.model, _physical(device))
        parked.pins = 1
        with self._lock:
            self._admit(device, key, parked, emitter, node)
        if emitter is not None:
            emitter.emit(ModelLoaded(model=key, device=device, node=node, text="from cpu",
                                     seconds=round(time.perf_counter() - started, 6)))
        return parked.model

    def _admit(self, device: str, key: str, entry: _Resident, emitter: EventEmitter | None,
               node: str | None) -> None:
        models = self._models(device)
        if entry.nbytes > models.budget:
            raise ModelBudgetError(f"model '{key}' needs {entry.nbytes / 2**20:.0f} MiB; the budget of {device} "
                                   f"is {models.budget / 2**20:.0f} MiB")
        self._make_room(models, entry.nbytes)
        while models.used + entry.nbytes > models.budget:
            victim = next((name for name, other in models.resident.items() if other.pins == 0), None)
            if victim is None:
                raise ModelBudgetError(f"model '{key}' does not fit on {device}: every resident model is in use")
            self._offload(device, victim, models.resident.pop(victim), emitter)
        models.resident[key] = entry

    def _offload(self, device: str, key: str, entry: _Resident, emitter: EventEmitter | None) -> None:
        """Park a model in CPU RAM when it can move and the CPU budget allows; otherwise drop it."""
        parked_bytes = sum(other.nbytes for other in self.offloaded.values())
        to_cpu = entry.movable and not device.startswith("cpu") and parked_bytes + entry.nbytes <= self.cpu_budget
        if to_cpu:
            entry.model = move_model(entry.model, "cpu")
            self.offloaded[key] = entry
        if emitter is not None:
            emitter.emit(ModelOffloaded(model=key, device=device, text="to cpu" if to_cpu else "dropped"))
