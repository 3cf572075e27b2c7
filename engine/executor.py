"""Runs a compiled graph: keys first, then only what the requested outputs need, ready nodes in parallel.

One run goes through four steps:
1. bind graph inputs and draw random seeds (recorded), so every result can be reproduced;
2. compute every node's Merkle key (no values needed);
3. plan backwards from the requested outputs: a node whose result is cached stops the walk;
4. execute the rest on a thread pool as their inputs become ready; a failure skips the node's descendants while
   independent branches finish; cancellation stops at the next node boundary or progress point.
"""

from __future__ import annotations

import queue
import random
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

from engine.cache import ResultCache
from engine.context import BoundValue, NodeContext
from engine.document import (
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
from engine.graph import RANDOM_SEEDS, CompiledGraph, CompiledNode, GraphEnv, compile_graph
from engine.inputs import bind_inputs
from engine.keys import link_material, list_material, literal_material, node_key
from engine.media import write_output
from engine.node import Node
from engine.record import NodeRecord, RunRecord


@dataclass
class RunResult:
    """The run record plus the output values in memory (media not yet written when no folder was given)."""

    record: RunRecord
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Prepared:
    """A node's literal inputs after graph inputs and seeds are resolved, its key material and key."""

    literals: dict[str, Any]
    materials: dict[str, Any]
    key: str | None


class Executor:
    """Executes graphs against one registry, cache and set of devices. Thread-safe; runs may overlap."""

    def __init__(self, env: GraphEnv, cache: ResultCache | None, *, workers: int = 8,
                 devices: list[str] | None = None, data_dir: Path | None = None) -> None:
        self.env = env
        self.cache = cache
        self.workers = workers
        self.devices = devices or ["cpu"]
        self.data_dir = data_dir

    def run(self, graph: GraphDocument | CompiledGraph, inputs: Mapping[str, Any] | None = None, *,
            run_id: str | None = None, listener: Listener | None = None, cancel: threading.Event | None = None,
            out_dir: Path | None = None, media_resolver: Any = None) -> RunResult:
        """Run a graph to completion (or failure, or cancellation). Invalid graphs or inputs raise before anything
        runs: GraphValidationError with every issue, or GraphInputError naming the input."""
        compiled = graph if isinstance(graph, CompiledGraph) else compile_graph(graph, self.env)
        bound, shown = bind_inputs(compiled.document, inputs or {}, media_resolver)
        emitter = EventEmitter(run_id or uuid.uuid4().hex[:12], listener)
        run = _Run(self, compiled, bound, emitter, cancel or threading.Event())
        run.record.inputs = shown
        run.execute()
        result = RunResult(run.record, run.outputs())
        self._materialise(result, compiled, out_dir)
        run.finish()
        return result

    def _materialise(self, result: RunResult, compiled: CompiledGraph, out_dir: Path | None) -> None:
        record = result.record
        metadata = {"nodeforge.graph": compiled.document.to_json(), "nodeforge.run": {
            "id": record.id, "inputs": record.inputs, "seeds": record.seeds}}
        for name, value in result.values.items():
            record.outputs[name] = write_output(value, out_dir, name, metadata) if out_dir else _plain(value)


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
        self.record = RunRecord(id=emitter.run_id, graph=graph.name, devices=list(executor.devices),
                                nodes={node_id: NodeRecord(type=node.spec.type) for node_id, node in graph.nodes.items()})
        self.prepared: dict[str, _Prepared] = {}

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
        for node_id in self.graph.order:
            node = self.graph.nodes[node_id]
            literals: dict[str, Any] = {}
            materials: dict[str, Any] = {}
            uncacheable = False
            for name, binding in node.bindings.items():
                material, value, known = self._material(binding)
                materials[name] = material
                if known:
                    literals[name] = value
                uncacheable = uncacheable or material is None
            self._draw_seed(node, literals, materials)
            issues.extend(self._check_bound_literals(node, literals))
            key = None if uncacheable else self._key(node, literals, materials)
            self.prepared[node_id] = _Prepared(literals, materials, key)
        if issues:
            raise GraphValidationError(issues)

    def _draw_seed(self, node: CompiledNode, literals: dict[str, Any], materials: dict[str, Any]) -> None:
        """Replace a random seed (-1 or "random", given or by default) by a drawn one; record every seed."""
        port = node.ports.inputs.get("seed")
        if port is None:
            return
        seed = literals.get("seed") if "seed" in node.bindings else port.default
        if seed in RANDOM_SEEDS and not isinstance(seed, bool):
            seed = random.SystemRandom().randrange(2**31)
            literals["seed"] = seed
            materials["seed"] = literal_material(seed)
        if isinstance(seed, int) and not isinstance(seed, bool):
            self.record.seeds[node.id] = seed

    def _material(self, binding: Binding) -> tuple[Any, Any, bool]:
        """(key material, literal value, whether the value is known before running)."""
        if isinstance(binding, LiteralBinding):
            return literal_material(binding.value), binding.value, True
        if isinstance(binding, InputBinding):
            bound = self.bound[binding.name]
            return literal_material(bound.material), bound.value, True
        if isinstance(binding, LinkBinding):
            key = self.prepared[binding.node].key
            return (None if key is None else link_material(key, binding.output)), None, False
        items = [self._material(item) for item in binding.items]
        if any(material is None for material, _, _ in items):
            return None, None, False
        return list_material([material for material, _, _ in items]), None, False

    def _check_bound_literals(self, node: CompiledNode, literals: dict[str, Any]) -> list[Issue]:
        issues = []
        for name, binding in node.bindings.items():
            if isinstance(binding, InputBinding) and literals.get(name) is not None:
                port = node.ports.inputs[name]
                if port.type in ("image", "audio", "video"):
                    continue
                try:
                    literals[name] = port.validate_literal(literals[name])
                except ValidationError as exc:
                    reason = exc.errors()[0]["msg"]
                    issues.append(Issue(node.id, name, "invalid_literal",
                                        f"graph input '{binding.name}' gives {name} = {literals[name]!r}: {reason}"))
        return issues

    def _key(self, node: CompiledNode, literals: dict[str, Any], materials: dict[str, Any]) -> str | None:
        instance = node.spec.instance
        fingerprint = None
        if type(instance).fingerprint is not Node.fingerprint:
            try:
                fingerprint = instance.fingerprint(literals, self.executor.env)
            except EngineError:
                return None
            if fingerprint is None:
                return None
        return node_key(node.spec.type, node.spec.version, materials, fingerprint)

    # 3: demand-driven plan.
    def _plan(self) -> set[str]:
        requested = {link.node for link in self.graph.outputs.values()}
        requested |= {node_id for node_id, node in self.graph.nodes.items() if node.spec.cls.side_effects}
        to_run: set[str] = set()
        visited: set[str] = set()
        stack = sorted(requested)
        while stack:
            node_id = stack.pop()
            if node_id in visited:
                continue
            visited.add(node_id)
            node = self.graph.nodes[node_id]
            key = self.prepared[node_id].key
            if key is not None and not node.spec.cls.side_effects and self.cache is not None:
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
        waiting = {node_id: {up for up in self.graph.nodes[node_id].upstream if up in to_run} for node_id in to_run}
        dependents: dict[str, list[str]] = {node_id: [] for node_id in to_run}
        for node_id, ups in waiting.items():
            for up in ups:
                dependents[up].append(node_id)
        position = {node_id: index for index, node_id in enumerate(self.graph.order)}
        ready = sorted((node_id for node_id, ups in waiting.items() if not ups), key=position.__getitem__,
                       reverse=True)
        done: queue.SimpleQueue[tuple[str, dict[str, Any] | None, BaseException | None, str | None]] = \
            queue.SimpleQueue()
        running = 0
        remaining = set(to_run)
        with ThreadPoolExecutor(self.executor.workers, thread_name_prefix=f"run-{self.record.id}") as pool:
            while True:
                while ready and not self.cancel.is_set():
                    node_id = ready.pop()
                    running += 1
                    pool.submit(self._execute_node, node_id, done)
                if running == 0:
                    break
                node_id, outputs, error, trace = done.get()
                running -= 1
                remaining.discard(node_id)
                if outputs is not None:
                    self.values[node_id] = outputs
                    for child in dependents[node_id]:
                        waiting[child].discard(node_id)
                        if not waiting[child] and child in remaining:
                            ready.append(child)
                elif isinstance(error, RunCancelled):
                    self._mark(node_id, "cancelled", None)
                else:
                    self._fail(node_id, error, trace, dependents, remaining)
        for node_id in sorted(remaining, key=position.__getitem__):
            self._mark(node_id, "cancelled", None)

    def _fail(self, node_id: str, error: BaseException | None, trace: str | None,
              dependents: dict[str, list[str]], remaining: set[str]) -> None:
        message = str(error)
        node_record = self.record.nodes[node_id]
        node_record.status, node_record.error, node_record.traceback = "failed", message, trace
        self.emitter.emit("node.failed", node=node_id, node_type=node_record.type, error=message)
        stack = list(dependents[node_id])
        while stack:
            child = stack.pop()
            if child in remaining:
                remaining.discard(child)
                self._mark(child, "skipped", f"skipped because '{node_id}' failed")
                stack.extend(dependents[child])

    def _mark(self, node_id: str, status: str, reason: str | None) -> None:
        node_record = self.record.nodes[node_id]
        node_record.status, node_record.error = status, reason  # type: ignore[assignment]
        if status == "skipped":
            self.emitter.emit("node.skipped", node=node_id, node_type=node_record.type, error=reason)

    def _execute_node(self, node_id: str, done: queue.SimpleQueue[Any]) -> None:
        node = self.graph.nodes[node_id]
        node_record = self.record.nodes[node_id]
        prepared = self.prepared[node_id]
        device = self.executor.devices[0] if node.spec.cls.accelerator else "cpu"
        node_record.status, node_record.device, node_record.started = "running", device, time.time()
        self.emitter.emit("node.started", node=node_id, node_type=node.spec.type, device=device)
        started = time.perf_counter()
        try:
            if self.cancel.is_set():
                raise RunCancelled(f"node '{node_id}' cancelled before it started")
            outputs = self._invoke(node, prepared, device)
        except RunCancelled as exc:
            node_record.finished = time.time()
            done.put((node_id, None, exc, None))
            return
        except Exception as exc:
            node_record.finished = time.time()
            wrapped = exc if isinstance(exc, NodeExecutionError) else NodeExecutionError(node_id, node.spec.type, exc)
            done.put((node_id, None, wrapped, traceback.format_exc()))
            return
        seconds = time.perf_counter() - started
        node_record.status, node_record.finished, node_record.seconds = "succeeded", time.time(), round(seconds, 6)
        self.emitter.emit("node.finished", node=node_id, node_type=node.spec.type, device=device,
                          seconds=node_record.seconds)
        done.put((node_id, outputs, None, None))

    def _invoke(self, node: CompiledNode, prepared: _Prepared, device: str) -> dict[str, Any]:
        values = {name: self._value(binding, prepared.literals.get(name))
                  for name, binding in node.bindings.items()}
        for name, literal in prepared.literals.items():
            values.setdefault(name, literal)
        spec = node.spec
        extras = {name: values.pop(name) for name in list(values) if name not in spec.inputs}
        try:
            for name, value in extras.items():
                extras[name] = node.ports.inputs[name].validate_literal(value)
            inputs = spec.cls.Inputs.model_validate({**values, **extras})
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else None
            raise NodeExecutionError(node.id, spec.type, _InputProblem(name, err["msg"])) from None
        ctx = NodeContext(node_id=node.id, node_type=spec.type, device=device, emitter=self.emitter,
                          cancel=self.cancel, env=self.executor.env, data_dir=self.executor.data_dir,
                          materials=prepared.materials, call_graph=self._call_graph)
        result = spec.instance.run(inputs, ctx)
        outputs = {name: getattr(result, name) for name in spec.outputs}
        if result.model_extra:
            outputs.update(result.model_extra)
        missing = [name for name in node.ports.outputs if name not in outputs]
        if missing:
            raise EngineError(f"the node returned no value for output(s) {', '.join(missing)}")
        if prepared.key is not None and not spec.cls.side_effects and self.cache is not None:
            self.cache.put(prepared.key, outputs)
        return outputs

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
        bound, _ = bind_inputs(document, dict(inputs))
        inner_emitter = EventEmitter(self.emitter.run_id, _forward_progress(ctx, len(compiled.nodes)))
        nested = _Run(Executor(env, self.cache, workers=self.executor.workers, devices=self.executor.devices,
                               data_dir=self.executor.data_dir), compiled, bound, inner_emitter, self.cancel)
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


class _InputProblem(EngineError):
    def __init__(self, input_name: str | None, message: str) -> None:
        self.input = input_name
        super().__init__(message)


def _forward_progress(ctx: NodeContext, total: int) -> Listener:
    """Inner nodes of a nested graph show up as progress steps of the calling node."""
    finished = [0]

    def listen(event: Any) -> None:
        if event.kind in ("node.finished", "node.cached"):
            finished[0] += 1
            ctx.progress(finished[0], total, f"{event.node}: {event.kind.split('.')[1]}")

    return listen
