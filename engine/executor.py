"""Runs a compiled graph: keys first, then only what the requested outputs need, ready nodes in parallel.

One run goes through four steps:
1. bind graph inputs and draw random seeds (recorded), so every result can be reproduced;
2. compute every node's Merkle key (no values needed);
3. plan backwards from the requested outputs: a node whose result is cached stops the walk;
4. execute the rest on a thread pool as their inputs become ready; a failure skips the node's descendants while
   independent branches finish; cancellation stops at the next node boundary or progress point.

Where a node runs is the backend's business (``engine.backend``): in this process by default, or on a Ray cluster
(``engine.ray_backend``); the policy above (order, placement by resident model, retries) is the same for both.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.backend import Backend, LocalBackend, Prepared, RunScope
from engine.cache import ResultCache
from engine.context import BoundValue, NodeContext
from engine.devices import default_budget, is_device_failure
from engine.document import (
    PNG_GRAPH_CHUNK,
    PNG_RUN_CHUNK,
    Binding,
    GraphDocument,
    InputBinding,
    LinkBinding,
    ListBinding,
    LiteralBinding,
)
from engine.errors import (
    EngineError,
    GraphValidationError,
    Issue,
    NodeExecutionError,
    RunCancelled,
)
from engine.events import EventEmitter, Listener
from engine.files import FileAccess, FilePolicy
from engine.graph import RANDOM_SEEDS, CompiledGraph, CompiledNode, GraphEnv, compile_graph
from engine.inputs import bind_inputs
from engine.keys import finish_key, input_part, link_material, list_material, literal_material
from engine.limits import MediaLimits
from engine.media import write_output
from engine.models import ModelManager
from engine.node import Node
from engine.record import NodeRecord, RunRecord
from engine.scheduler import DeviceSlot, Estimates, ReadySet, place


@dataclass
class RunResult:
    """The run record plus the output values in memory (media not yet written when no folder was given)."""

    record: RunRecord
    values: dict[str, Any] = field(default_factory=dict)


_Outcome = tuple[dict[str, Any] | None, BaseException | None, str | None]


class Executor:
    """Executes graphs against one registry, cache and set of devices. Thread-safe; runs may overlap.

    Nodes run in this process unless a ``backend`` is given (``engine.ray_backend.RayBackend``: a Ray cluster);
    the devices then come from the backend."""

    def __init__(self, env: GraphEnv, cache: ResultCache | None, *, workers: int = 8,
                 devices: list[str] | None = None, data_dir: Path | None = None,
                 models: ModelManager | None = None, backend: Backend | None = None,
                 policy: FilePolicy | None = None, limits: MediaLimits | None = None) -> None:
        self.env = env
        self.workers = workers
        self.policy = policy
        self.limits = limits or MediaLimits()
        self.devices = devices or (backend.refresh() if backend is not None else None) or ["cpu"]
        self.data_dir = data_dir
        self.models = models or ModelManager({device: default_budget(device) for device in self.devices})
        self.backend: Backend = backend if backend is not None else LocalBackend(self.models)
        self.cache = self.backend.adapt_cache(cache)
        self.estimates = Estimates()
        self.slots = [DeviceSlot(device) for device in self.devices]
        self.state = threading.Condition()

    def run(self, graph: GraphDocument | CompiledGraph, inputs: Mapping[str, Any] | None = None, *,
            run_id: str | None = None, listener: Listener | None = None, cancel: threading.Event | None = None,
            out_dir: Path | None = None, media_resolver: Any = None) -> RunResult:
        """Run a graph to completion (or failure, or cancellation). Invalid graphs or inputs raise before anything
        runs: GraphValidationError with every issue, or GraphInputError naming the input."""
        compiled = graph if isinstance(graph, CompiledGraph) else compile_graph(graph, self.env)
        bound, shown = bind_inputs(compiled.document, inputs or {}, media_resolver, self.limits)
        self._sync_devices()
        emitter = EventEmitter(run_id or uuid.uuid4().hex[:12], listener)
        run = _Run(self, compiled, bound, emitter, cancel or threading.Event())
        run.record.inputs = shown
        run.execute()
        result = RunResult(run.record, self.backend.fetch(run.outputs()))
        self._materialise(result, compiled, out_dir)
        run.finish()
        return result

    def _sync_devices(self) -> None:
        """Take the backend's current devices (a cluster gains or loses GPUs between runs); slots of devices
        that stay keep their state."""
        devices = self.backend.refresh()
        if devices is None or devices == self.devices:
            return
        with self.state:
            slots = {slot.name: slot for slot in self.slots}
            self.slots = [slots.get(name) or DeviceSlot(name) for name in devices]
            self.devices = list(devices)

    def _materialise(self, result: RunResult, compiled: CompiledGraph, out_dir: Path | None) -> None:
        record = result.record
        metadata = {PNG_GRAPH_CHUNK: reproducible_document(compiled, record),
                    PNG_RUN_CHUNK: {"id": record.id, "inputs": record.inputs, "seeds": record.seeds}}
        for name, value in result.values.items():
            record.outputs[name] = write_output(value, out_dir, name, metadata) if out_dir else _plain(value)


def reproducible_document(compiled: CompiledGraph, record: RunRecord) -> dict[str, Any]:
    """The graph as it ran: drawn seeds written in as literals and graph-input defaults set to the values used,
    so the document embedded in an output reproduces that output on its own."""
    data = compiled.document.to_json()
    for node_id, seed in record.seeds.items():
        data["nodes"][node_id]["inputs"]["seed"] = seed
    for name, value in record.inputs.items():
        decl = data["inputs"].get(name)
        if decl is not None and decl["type"] not in ("image", "audio", "video"):
            decl["default"] = value
    return data


def _plain(value: Any) -> Any:
    from engine.values import Audio, Image, Video

    if isinstance(value, Image | Audio | Video):
        return {"media_type": type(value).__name__.lower()}
    return value


class _Run:
    """The state of one execution; its methods run on the caller's thread except ``_execute_node``."""

    def __init__(self, executor: Executor, graph: CompiledGraph, bound: dict[str, BoundValue],
                 emitter: EventEmitter, cancel: threading.Event) -> None:
        self.executor = executor
        self.graph = graph
        self.bound = bound
        self.emitter = emitter
        self.cancel = cancel
        self.cache = executor.cache
        self.values: dict[str, dict[str, Any]] = {}
        nodes = {node_id: NodeRecord(type=node.spec.type) for node_id, node in graph.nodes.items()}
        self.record = RunRecord(id=emitter.run_id, graph=graph.name, devices=list(executor.devices), nodes=nodes)
        self.prepared: dict[str, Prepared] = {}
        files = FileAccess(executor.policy, executor.data_dir, tuple(executor.env.library.folders), executor.limits)
        self.scope = RunScope(emitter, cancel, executor.env, executor.data_dir, files, executor.cache,
                              self._call_graph)

    def execute(self) -> None:
        self.record.started = time.time()
        self.emitter.emit("run.started")
        self._prepare()
        to_run = self._plan()
        if to_run:
            self._schedule(to_run)
        if self.cache is not None:
            self.cache.flush()

    def finish(self) -> None:
        record = self.record
        failed = [node_id for node_id, node in record.nodes.items() if node.status == "failed"]
        if self.cancel.is_set() and any(node.status == "cancelled" for node in record.nodes.values()):
            record.status, record.error = "cancelled", "the run was cancelled"
        elif failed:
            record.status = "failed"
            first = record.nodes[failed[0]].error
            record.error = first if len(failed) == 1 else f"{len(failed)} nodes failed; first: {first}"
        else:
            record.status = "succeeded"
        record.finished = time.time()
        self.emitter.emit("run.finished", status=record.status, error=record.error)

    # 1 + 2: literals, seeds and keys, in topological order.
    def _prepare(self) -> None:
        issues: list[Issue] = []
        prepared = self.prepared
        for node_id in self.graph.order:
            node = self.graph.nodes[node_id]
            literals = dict(node.literals)
            materials: dict[str, str] = {}
            parts = [node.key_prefix]
            cacheable = bool(node.key_prefix)
            for name, binding in node.dynamic:
                material, value, known = self._material(binding)
                if material is None:
                    cacheable = False
                else:
                    materials[name] = material
                    parts.append(input_part(name, material))
                if known:
                    literals[name] = value
                    if isinstance(binding, InputBinding):
                        issues.extend(self._check_bound_literal(node, name, binding.name, literals))
            seed = self._draw_seed(node, literals)
            if seed is not None:
                materials["seed"] = literal_material(seed)
                parts.append(input_part("seed", materials["seed"]))
            key = self._key(node, literals, parts) if cacheable else None
            models = node.spec.instance.models(literals) if node.spec.cls.accelerator else []
            prepared[node_id] = Prepared(literals, materials, key, models)
        if issues:
            raise GraphValidationError(issues)

    def _draw_seed(self, node: CompiledNode, literals: dict[str, Any]) -> int | None:
        """Draw a random seed (-1 or "random", given or by default) and record every seed; returns a drawn seed."""
        port = node.ports.inputs.get("seed")
        if port is None:
            return None
        binding = node.bindings.get("seed")
        seed = port.default if binding is None else literals.get("seed", getattr(binding, "value", None))
        drawn = None
        if seed in RANDOM_SEEDS and not isinstance(seed, bool):
            seed = drawn = random.SystemRandom().randrange(2**31)
            literals["seed"] = seed
        if isinstance(seed, int) and not isinstance(seed, bool):
            self.record.seeds[node.id] = seed
        return drawn

    def _material(self, binding: Binding) -> tuple[str | None, Any, bool]:
        """(key material, literal value, whether the value is known before running)."""
        if isinstance(binding, LinkBinding):
            key = self.prepared[binding.node].key
            return (None if key is None else link_material(key, binding.output)), None, False
        if isinstance(binding, InputBinding):
            bound = self.bound[binding.name]
            return bound.material, bound.value, True
        if isinstance(binding, LiteralBinding):
            return literal_material(binding.value), binding.value, True
        items = [self._material(item)[0] for item in binding.items]
        if any(material is None for material in items):
            return None, None, False
        return list_material(items), None, False  # type: ignore[arg-type]

    def _check_bound_literal(self, node: CompiledNode, name: str, graph_input: str,
                             literals: dict[str, Any]) -> list[Issue]:
        """A graph input's value checked against the node input it feeds (its range, its enum)."""
        port = node.ports.inputs[name]
        if literals[name] is None or port.type in ("image", "audio", "video"):
            return []
        try:
            literals[name] = port.validate_literal(literals[name])
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            return [Issue(node.id, name, "invalid_literal",
                          f"graph input '{graph_input}' gives {name} = {literals[name]!r}: {reason}")]
        return []

    def _key(self, node: CompiledNode, literals: dict[str, Any], parts: list[str]) -> str | None:
        instance = node.spec.instance
        fingerprint = None
        if type(instance).fingerprint is not Node.fingerprint:
            try:
                fingerprint = instance.fingerprint(literals, self.executor.env)
            except EngineError:
                return None
            if fingerprint is None:
                return None
        return finish_key(parts, fingerprint)

    # 3: demand-driven plan.
    def _plan(self) -> set[str]:
        requested = {link.node for link in self.graph.outputs.values()}
        requested |= {node_id for node_id, node in self.graph.nodes.items() if node.spec.cls.side_effects}
        to_run: set[str] = set()
        visited: set[str] = set()
        stack = sorted(requested)
        keys = [prepared.key for prepared in self.prepared.values() if prepared.key is not None]
        present = self.cache.present(keys) if self.cache is not None else set()
        while stack:
            node_id = stack.pop()
            if node_id in visited:
                continue
            visited.add(node_id)
            node = self.graph.nodes[node_id]
            key = self.prepared[node_id].key
            if key in present and not node.spec.cls.side_effects and self.cache is not None:
                outputs = self.cache.get(key)
                if outputs is not None:
                    self.values[node_id] = outputs
                    continue
            to_run.add(node_id)
            stack.extend(node.upstream)
        covered = _ancestors(self.graph, visited - to_run)
        for node_id, node_record in self.record.nodes.items():
            if node_id in to_run:
                continue
            if node_id in visited or node_id in covered:
                node_record.status = "cached"
                self.emitter.emit("node.cached", node=node_id, node_type=node_record.type)
            else:
                node_record.status = "skipped"
                node_record.error = "not needed for the graph's outputs"
        return to_run

    # 4: parallel execution.
    def _schedule(self, to_run: set[str]) -> None:
        """Workers take ready nodes themselves and release dependents as they finish, so a chain runs on one
        thread without hand-offs while independent branches spread over every worker. An accelerator node also
        needs its device: one accelerator node per device at a time, across every run of the executor."""
        ready = ReadySet(to_run, {node_id: self.graph.nodes[node_id].upstream for node_id in to_run},
                         self.graph.order, lambda node_id: self.graph.nodes[node_id].spec.cls.accelerator)
        state = self.executor.state
        running = [0]
        excluded: dict[str, frozenset[str]] = {}

        def device_for(node_id: str) -> str | None:
            node = self.graph.nodes[node_id]
            estimates, backend = self.executor.estimates, self.executor.backend
            exclude = excluded.get(node_id, frozenset())
            if backend.down:
                exclude |= backend.down
            return place(self.prepared[node_id].models, estimates.run_time(node.spec.type), self.executor.slots,
                         backend.resident_on, lambda model: backend.load_times.get(model, estimates.default_load),
                         time.monotonic(), exclude)

        torch_threads = _torch_threads()

        def work() -> None:
            if torch_threads is not None:
                _set_torch_threads(torch_threads)
            node_id: str | None = None
            device = "cpu"
            outcome: _Outcome = (None, None, None)
            while True:
                with state:
                    if node_id is not None:
                        running[0] -= 1
                        self._settle(node_id, device, outcome, ready, state, excluded)
                    picked = None
                    while not self.cancel.is_set():
                        picked = ready.pop_first(device_for, any(not slot.busy for slot in self.executor.slots))
                        if picked is not None or (not running[0] and not len(ready)):
                            break
                        state.wait()
                    if picked is None:
                        state.notify_all()
                        return
                    node_id, device = picked
                    self._claim(node_id, device)
                    running[0] += 1
                outcome = self._execute_node(node_id, device)

        workers = min(self.executor.workers, len(to_run))
        if any(self.graph.nodes[node_id].spec.cls.accelerator for node_id in to_run):
            workers = min(max(workers, len(self.executor.devices) + 1), len(to_run))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"run-{self.record.id}") as pool:
            for future in [pool.submit(work) for _ in range(workers)]:
                future.result()
        for node_id in self.graph.order:
            if node_id in ready.pending:
                self._mark(node_id, "cancelled", None)

    def _claim(self, node_id: str, device: str) -> None:
        """Mark a device busy for an accelerator node until about when it should finish (called under state)."""
        node = self.graph.nodes[node_id]
        if not node.spec.cls.accelerator:
            return
        estimates, backend = self.executor.estimates, self.executor.backend
        loading = sum(backend.load_times.get(model, estimates.default_load) for model in self.prepared[node_id].models
                      if device not in backend.resident_on(model))
        for slot in self.executor.slots:
            if slot.name == device:
                slot.busy_until = time.monotonic() + loading + estimates.run_time(node.spec.type)

    def _settle(self, node_id: str, device: str, outcome: _Outcome, ready: ReadySet, state: threading.Condition,
                excluded: dict[str, frozenset[str]]) -> None:
        """Record a finished node, free its device and release its dependents (called with ``state`` held)."""
        node = self.graph.nodes[node_id]
        if node.spec.cls.accelerator:
            for slot in self.executor.slots:
                if slot.name == device:
                    slot.busy_until = None
            state.notify_all()
        outputs, error, trace = outcome
        if outputs is not None:
            seconds = self.record.nodes[node_id].seconds
            if seconds is not None:
                self.executor.estimates.observe_run(node.spec.type, seconds)
            self.values[node_id] = outputs
            newly = ready.complete(node_id)
            if newly > 1:
                state.notify(newly - 1)
        elif isinstance(error, RunCancelled):
            self._mark(node_id, "cancelled", None)
        elif self._retry_elsewhere(node_id, device, error, excluded):
            ready.push_back(node_id)
            state.notify_all()
        else:
            self._fail(node_id, error, trace, ready.drop_descendants(node_id))

    def _retry_elsewhere(self, node_id: str, device: str, error: BaseException | None,
                         excluded: dict[str, frozenset[str]]) -> bool:
        """After a device failure (out of memory, driver error), try once more on another device."""
        node = self.graph.nodes[node_id]
        if not node.spec.cls.accelerator or node_id in excluded or not is_device_failure(error):
            return False
        backend = self.executor.backend
        if not any(name != device and name not in backend.down for name in self.executor.devices):
            return False
        excluded[node_id] = frozenset({device})
        for model in self.prepared[node_id].models:
            backend.evict(device, model, self.emitter)
        self.emitter.emit("node.warning", node=node_id, node_type=node.spec.type, device=device,
                          text=f"device {device} failed ({error}); retrying on another device")
        return True

    def _fail(self, node_id: str, error: BaseException | None, trace: str | None, dropped: list[str]) -> None:
        message = str(error)
        node_record = self.record.nodes[node_id]
        node_record.status, node_record.error, node_record.traceback = "failed", message, trace
        self.emitter.emit("node.failed", node=node_id, node_type=node_record.type, error=message)
        for child in dropped:
            self._mark(child, "skipped", f"skipped because '{node_id}' failed")

    def _mark(self, node_id: str, status: str, reason: str | None) -> None:
        node_record = self.record.nodes[node_id]
        node_record.status, node_record.error = status, reason  # type: ignore[assignment]
        if status == "skipped":
            self.emitter.emit("node.skipped", node=node_id, node_type=node_record.type, error=reason)

    def _execute_node(self, node_id: str, device: str) -> _Outcome:
        """Run one node on the calling worker thread: (outputs, None, None) or (None, error, traceback)."""
        node = self.graph.nodes[node_id]
        node_record = self.record.nodes[node_id]
        node_record.status, node_record.device, node_record.started = "running", device, time.time()
        self.emitter.emit("node.started", node=node_id, node_type=node.spec.type, device=device)
        started = time.perf_counter()
        try:
            outputs = self._invoke(node, self.prepared[node_id], device)
        except RunCancelled as exc:
            node_record.finished = time.time()
            return None, exc, None
        except Exception as exc:
            node_record.finished = time.time()
            wrapped = exc if isinstance(exc, NodeExecutionError) else NodeExecutionError(node_id, node.spec.type, exc)
            return None, wrapped, traceback.format_exc()
        seconds = time.perf_counter() - started
        node_record.status, node_record.finished, node_record.seconds = "succeeded", time.time(), round(seconds, 6)
        self.emitter.emit("node.finished", node=node_id, node_type=node.spec.type, device=device,
                          seconds=node_record.seconds)
        return outputs, None, None

    def _invoke(self, node: CompiledNode, prepared: Prepared, device: str) -> dict[str, Any]:
        """Gather the node's input values and hand the node to the backend, which stores cacheable outputs."""
        values = dict(prepared.literals)
        for name, binding in node.dynamic:
            values[name] = self._value(binding, values.get(name))
        return self.executor.backend.invoke(node, prepared, device, values, self.scope)

    def _value(self, binding: Binding, literal: Any) -> Any:
        if isinstance(binding, LinkBinding):
            return self.values[binding.node][binding.output]
        if isinstance(binding, ListBinding):
            return [self._value(item, item.value if isinstance(item, LiteralBinding) else None)
                    for item in binding.items]
        if isinstance(binding, InputBinding):
            return literal if literal is not None else self.bound[binding.name].value
        return literal

    def _call_graph(self, ctx: NodeContext, document: GraphDocument,
                    inputs: Mapping[str, BoundValue]) -> dict[str, Any]:
        env = self.executor.env.entering(document.name or "graph")
        compiled = compile_graph(document, env)
        bound, _ = bind_inputs(document, dict(inputs), limits=self.executor.limits)
        inner_emitter = EventEmitter(self.emitter.run_id, _forward_progress(ctx, len(compiled.nodes)))
        nested = _Run(Executor(env, self.cache, workers=self.executor.workers, devices=self.executor.devices,
                               data_dir=self.executor.data_dir, models=self.executor.models,
                               backend=self.executor.backend, policy=self.executor.policy,
                               limits=self.executor.limits),
                      compiled, bound, inner_emitter, self.cancel)
        nested.execute()
        failed = [node_id for node_id, rec in nested.record.nodes.items() if rec.status == "failed"]
        if failed:
            raise EngineError(f"inner node {nested.record.nodes[failed[0]].error}")
        ctx.check_cancelled()
        return nested.outputs()

    def outputs(self) -> dict[str, Any]:
        return {name: self.values[link.node][link.output]
                for name, link in self.graph.outputs.items() if link.node in self.values}


def _ancestors(graph: CompiledGraph, nodes: set[str]) -> set[str]:
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        for up in graph.nodes[stack.pop()].upstream:
            if up not in found:
                found.add(up)
                stack.append(up)
    return found


def _forward_progress(ctx: NodeContext, total: int) -> Listener:
    """Inner nodes of a nested graph show up as progress steps of the calling node."""
    finished = [0]

    def listen(event: Any) -> None:
        if event.kind in ("node.finished", "node.cached"):
            finished[0] += 1
            ctx.progress(finished[0], total, f"{event.node}: {event.kind.split('.')[1]}")

    return listen


def _torch_threads() -> int | None:
    """The caller's torch thread count, when torch is loaded: OpenMP keeps it per thread, and worker threads would
    otherwise use every core whatever the caller set (results then differ in the last float bits)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def _set_torch_threads(count: int) -> None:
    torch = sys.modules["torch"]
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
