"""The engine session: what outlives one run, shared by every run in the process.

A ``Session`` owns the result cache, the model manager, the devices with their slots and learned run-time
estimates (``engine.slots``: one accelerator node per device at a time, across every run however many run at
once) and the backend that executes nodes (this process, or a Ray cluster). The CLI, the server, ``watch`` and
nested ``graph.call`` runs all go through one session. A run reads in pipeline order::

    document -> validate + compile (engine.compiler) -> bind graph inputs (engine.inputs)
    -> prepare: literals, seeds, keys (engine.prepare) -> plan (engine.plan)
    -> execute (engine.execute, engine.workers) -> outputs written, record finished
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nodeforge.engine.backend import Backend, LocalBackend
from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import CompiledGraph, GraphEnv, compile_graph
from nodeforge.engine.config import EngineConfig, device_models, open_cache, ray_backend
from nodeforge.engine.document import PNG_GRAPH_CHUNK, PNG_RUN_CHUNK, GraphDocument
from nodeforge.engine.errors import StorageError
from nodeforge.engine.events import EventEmitter, Listener
from nodeforge.engine.execute import Run
from nodeforge.engine.files import FileAccess, FilePolicy
from nodeforge.engine.first_imports import serialize_first_imports
from nodeforge.engine.inputs import MediaResolver, bind_inputs
from nodeforge.engine.limits import MediaLimits
from nodeforge.engine.media_io import write_output
from nodeforge.engine.models import ModelManager
from nodeforge.engine.previews import Previews
from nodeforge.engine.record import RunRecord
from nodeforge.engine.slots import DeviceSlots
from nodeforge.engine.types import MEDIA_TYPES
from nodeforge.engine.values import Audio, Control, Image, Video


@dataclass
class RunResult:
    """The run record plus the output values in memory (media not yet written when no folder was given)."""

    record: RunRecord
    values: dict[str, Any] = field(default_factory=dict)


class Session:
    """Runs graphs against one cache, model manager and set of devices. Thread-safe; runs may overlap.

    ``env`` is the default graph environment (node types, saved graphs); a run may bring its own (a server whose
    plugins were reloaded). Nodes run in this process unless a ``backend`` is given (``engine.ray.driver``); the
    devices then come from the backend. ``policy`` restricts the files nodes open (``engine.files``). The front
    ends open one with ``Session.open`` from an ``EngineConfig``; tests and benchmarks may build one directly."""

    def __init__(self, env: GraphEnv, cache: ResultCache | None, *, workers: int = 8,
                 devices: list[str] | None = None, data_dir: Path | None = None,
                 models: ModelManager | None = None, backend: Backend | None = None,
                 policy: FilePolicy | None = None, limits: MediaLimits | None = None) -> None:
        serialize_first_imports()
        self.env = env
        self.workers = workers
        self.policy = policy
        self.limits = limits or MediaLimits()
        names = devices or (backend.refresh() if backend is not None else None) or ["cpu"]
        self.data_dir = data_dir
        self.models = models or device_models(names)
        self.backend: Backend = backend if backend is not None else LocalBackend(self.models)
        self.cache = self.backend.adapt_cache(cache)
        self.slots = DeviceSlots(names, self.backend)
        self._own_cache: ResultCache | None = None

    @property
    def devices(self) -> list[str]:
        return self.slots.devices

    def files_for(self, env: GraphEnv) -> FileAccess:
        """How the nodes of a run in ``env`` open files: this session's policy and limits, the env's library."""
        return FileAccess(self.policy, self.data_dir, tuple(env.library.folders), self.limits)

    def checking(self, env: GraphEnv) -> GraphEnv:
        """``env`` with this session's path policy for validation, so literal paths it forbids are issues before
        anything runs (unchanged without a policy, or when the env carries one already)."""
        if self.policy is None or env.files is not None:
            return env
        return replace(env, files=self.files_for(env))

    @classmethod
    def open(cls, config: EngineConfig, env: GraphEnv, *, cache: ResultCache | None = None,
             devices: list[str] | None = None, accelerated: bool = True) -> Session:
        """The session ``config`` describes: the one way the front ends (CLI, server, ``watch``, the embedding
        API) make one. ``cache`` is a cache shared with other sessions, which ``close`` leaves open; without it the
        session opens the config's own (``open_cache``) and ``close`` closes it. The devices are ``devices`` when
        the caller detected them already, else ``config.device_names(accelerated)``. EngineError when the options
        do not fit the devices; what Ray raised when the cluster cannot be reached."""
        local: list[str] | None = None
        backend: Backend | None = None
        if config.backend == "ray":
            backend = ray_backend(config)
            models = device_models(["cpu"])  # models outside a graph (the server's chat endpoint) stay on the CPU
        else:
            local = devices or config.device_names(accelerated) or ["cpu"]
            models = device_models(local, config.vram_budget, config.memory_mode)
        own = open_cache(config) if cache is None else None
        session = cls(env, cache if cache is not None else own, workers=config.workers, devices=local,
                      data_dir=config.data_dir, models=models, backend=backend, policy=config.policy,
                      limits=config.limits)
        session._own_cache = own
        return session

    def close(self) -> None:
        """Give the backend back (a Ray cluster's workers) and close the cache ``open`` opened for this session."""
        self.backend.close()
        if self._own_cache is not None:
            self._own_cache.close()

    def run(self, graph: GraphDocument | CompiledGraph, inputs: Mapping[str, Any] | None = None, *,
            env: GraphEnv | None = None, run_id: str | None = None, listener: Listener | None = None,
            cancel: threading.Event | None = None, out_dir: Path | None = None,
            media_resolver: MediaResolver | None = None, previews: Previews | None = None) -> RunResult:
        """Run a graph to completion (or failure, or cancellation). Invalid graphs or inputs raise before anything
        runs: GraphValidationError with every issue, or GraphInputError naming the input. With ``previews``,
        diffusion nodes publish step previews to its sink (``engine.previews``)."""
        env = env or self.env
        compiled = graph if isinstance(graph, CompiledGraph) else compile_graph(graph, self.checking(env))
        bound, shown = bind_inputs(compiled.document, inputs or {}, media_resolver, self.limits)
        self._sync_devices()
        emitter = EventEmitter(run_id or uuid.uuid4().hex[:12], listener)
        run = Run(self, compiled, bound, emitter, cancel or threading.Event(), env, previews)
        run.record.inputs = shown
        run.execute()
        result = RunResult(run.record, self.backend.fetch(run.outputs()))
        run.finish(self._materialise(result, compiled, out_dir))
        return result

    def _sync_devices(self) -> None:
        """Take the backend's current devices (a cluster gains or loses GPUs between runs); slots of devices
        that stay keep their state."""
        devices = self.backend.refresh()
        if devices is not None and devices != self.devices:
            self.slots.resize(devices)

    def _materialise(self, result: RunResult, compiled: CompiledGraph, out_dir: Path | None) -> str | None:
        """Write media outputs into ``out_dir``; why one could not be written (the disk full or failing), which
        fails the run, or None. The outputs written before it stay in the record."""
        record = result.record
        metadata = None
        if out_dir is not None and any(_holds_image(value) for value in result.values.values()):
            # what a PNG carries; the whole document as JSON, so only when some output is a picture
            metadata = {PNG_GRAPH_CHUNK: reproducible_document(compiled, record),
                        PNG_RUN_CHUNK: {"id": record.id, "inputs": record.inputs, "seeds": record.seeds}}
        for name, value in result.values.items():
            try:
                record.outputs[name] = write_output(value, out_dir, name, metadata) if out_dir else _plain(value)
            except OSError as exc:
                node = compiled.outputs[name].node
                return f"output '{name}' of node '{node}' could not be written: {StorageError.of(exc)}"
        return None


def reproducible_document(compiled: CompiledGraph, record: RunRecord) -> dict[str, Any]:
    """The graph as it ran: drawn seeds written in as literals and graph-input defaults set to the values used,
    so the document embedded in an output reproduces that output on its own."""
    data = compiled.document.to_json()
    for node_id, seed in record.seeds.items():
        seed_input = compiled.nodes[node_id].spec.seed_input if node_id in compiled.nodes else None
        if seed_input is not None:
            data["nodes"][node_id]["inputs"][seed_input] = seed
    for name, value in record.inputs.items():
        decl = data["inputs"].get(name)
        if decl is not None and decl["type"] not in MEDIA_TYPES:
            decl["default"] = value
    return data


def _holds_image(value: Any) -> bool:
    return isinstance(value, Image) or (isinstance(value, list) and any(_holds_image(item) for item in value))


def _plain(value: Any) -> Any:
    if isinstance(value, Image | Audio | Video | Control):
        return {"media_type": type(value).__name__.lower()}
    return value
