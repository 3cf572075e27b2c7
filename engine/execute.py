"""One run of a graph in a session, stage by stage: prepare (literals, seeds, keys), plan (walk back from the
outputs, cache hits stop it), execute (``engine.workers``), then the record's final status. What a node produces
is cached here, by the same rule the plan reads by (``engine.plan.cache_key``); the backend only runs it.

A failure skips the node's descendants while independent branches finish; a device failure (out of memory, a
driver error) is retried once on another device; cancellation stops at the next node boundary or progress point.
``graph.call`` runs its inner graph as a nested ``Run`` of the same session, so its nodes share the cache, the
device slots and the resident models.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nodeforge.engine.backend import Prepared, RunScope
from nodeforge.engine.compiler import CompiledGraph, CompiledNode, GraphEnv, compile_graph
from nodeforge.engine.context import BoundValue, NestedRun, NodeContext
from nodeforge.engine.devices import is_device_failure
from nodeforge.engine.document import Binding, GraphDocument, InputBinding, LinkBinding, ListBinding, LiteralBinding
from nodeforge.engine.errors import EngineError, NodeExecutionError, RunCancelled, StorageError
from nodeforge.engine.events import (
    CACHED_PER_EVENT,
    Event,
    EventEmitter,
    Listener,
    NodeFailed,
    NodeFinished,
    NodesCached,
    NodeSkipped,
    NodeStarted,
    NodeWarning,
    RunFinished,
    RunStarted,
)
from nodeforge.engine.inputs import bind_inputs
from nodeforge.engine.plan import Plan, cache_key, plan
from nodeforge.engine.prepare import prepare
from nodeforge.engine.previews import Previews
from nodeforge.engine.record import NodeRecord, NodeStatus, RunRecord
from nodeforge.engine.values import tensor_nbytes
from nodeforge.engine.workers import WorkerPool

if TYPE_CHECKING:
    from nodeforge.engine.session import Session

Verdict = Literal["done", "retry", "failed", "cancelled"]
"""What became of a finished node: the worker pool moves it on accordingly (``WorkerPool._settle``)."""


@dataclass(slots=True)
class Outcome:
    """How one node execution went: its outputs and run time, or its error (with the traceback)."""

    outputs: dict[str, Any] | None
    seconds: float | None = None
    error: BaseException | None = None
    trace: str | None = None


class Run:
    """The state of one execution; its methods run on the caller's thread except ``execute_node``, and
    ``settle`` and ``skip`` run holding the session's device slots (called by the worker pool)."""

    def __init__(self, session: Session, graph: CompiledGraph, bound: Mapping[str, BoundValue],
                 emitter: EventEmitter, cancel: threading.Event, env: GraphEnv,
                 previews: Previews | None = None) -> None:
        self.session = session
        self.graph = graph
        self.bound = bound
        self.emitter = emitter
        self.cancel = cancel
        self.env = env
        self.values: dict[str, dict[str, Any]] = {}
        nodes = {node_id: NodeRecord(node.spec.type) for node_id, node in graph.nodes.items()}
        for node_id, doc in graph.document.nodes.items():
            if doc.bypass and node_id not in nodes:
                nodes[node_id] = NodeRecord(doc.type, status="skipped", error="bypassed")
        self.record = RunRecord(id=emitter.run_id, graph=graph.name, devices=list(session.devices), nodes=nodes)
        self.prepared: dict[str, Prepared] = {}
        files = session.files_for(env)
        self.scope = RunScope(emitter, cancel, env, session.data_dir, files, session.cache, self._call_graph,
                              previews, self._record_detail)

    def execute(self) -> None:
        self.record.started = time.time()
        self.emitter.emit(RunStarted())
        self.prepared = prepare(self.graph, self.bound, self.env, self.record.seeds)
        planned = plan(self.graph, self.prepared, self.session.cache)
        self._report(planned)
        if planned.to_run:
            WorkerPool(self, planned.to_run, self.session.slots, self.session.workers).execute()

    def _report(self, planned: Plan) -> None:
        """Take the plan's cached outputs and record (and announce) the nodes that will not run."""
        self.values.update(planned.loaded)
        records = self.record.nodes
        for node_id in planned.cached:
            records[node_id].status = "cached"
        for start in range(0, len(planned.cached), CACHED_PER_EVENT):
            self.emitter.emit(NodesCached(nodes=tuple(planned.cached[start:start + CACHED_PER_EVENT])))
        for node_id in planned.unneeded:
            node_record = self.record.nodes[node_id]
            node_record.status, node_record.error = "skipped", "not needed for the graph's outputs"

    def finish(self, unwritten: str | None = None) -> None:
        """Settle the run's status and announce it; ``unwritten`` says why an output could not be written, which
        fails a run whose nodes all succeeded."""
        record = self.record
        failed = [node_id for node_id, node in record.nodes.items() if node.status == "failed"]
        if self.cancel.is_set() and any(node.status == "cancelled" for node in record.nodes.values()):
            record.status, record.error = "cancelled", "the run was cancelled"
        elif failed:
            record.status = "failed"
            first = record.nodes[failed[0]].error
            error = first if len(failed) == 1 else f"{len(failed)} nodes failed; first: {first}"
            record.error = f"{error}; and {unwritten}" if unwritten else error
        elif unwritten:
            record.status, record.error = "failed", unwritten
        else:
            record.status = "succeeded"
        record.finished = time.time()
        self.emitter.emit(RunFinished(status=record.status, error=record.error))

    def _record_detail(self, node_id: str, name: str, data: dict[str, Any]) -> None:
        """``ctx.record_detail`` of a node of this run: kept in its record (``details``)."""
        self.record.nodes[node_id].details[name] = data

    def outputs(self) -> dict[str, Any]:
        return {name: self.values[link.node][link.output]
                for name, link in self.graph.outputs.items() if link.node in self.values}

    # Settling a node (holding the session's device slots).
    def settle(self, node_id: str, device: str, outcome: Outcome, may_retry: bool) -> Verdict:
        """Record a finished node: done (its outputs kept), cancelled, to be retried on another device (a device
        failure, when ``may_retry``), or failed."""
        if outcome.outputs is not None:
            self.values[node_id] = outcome.outputs
            return "done"
        error = outcome.error
        if isinstance(error, RunCancelled):
            self.mark(node_id, "cancelled", None)
            return "cancelled"
        if may_retry and is_device_failure(error):
            self._retry_elsewhere(node_id, device, error)
            return "retry"
        message = str(error)
        node_record = self.record.nodes[node_id]
        node_record.status, node_record.error, node_record.traceback = "failed", message, outcome.trace
        self.emitter.emit(NodeFailed(node=node_id, node_type=node_record.type, error=message))
        return "failed"

    def _retry_elsewhere(self, node_id: str, device: str, error: BaseException | None) -> None:
        """After a device failure (out of memory, driver error): drop the node's models there, which the failure
        may have left broken, and say that it is retried on another device."""
        backend = self.session.backend
        for model in self.prepared[node_id].models:
            backend.evict(device, model, self.emitter)
        self.emitter.emit(NodeWarning(node=node_id, node_type=self.graph.nodes[node_id].spec.type, device=device,
                                      text=f"device {device} failed ({error}); retrying on another device"))

    def skip(self, dropped: list[str], failed: str) -> None:
        """Record the nodes that will not run because ``failed`` failed upstream of them."""
        for child in dropped:
            self.mark(child, "skipped", f"skipped because '{failed}' failed")

    def mark(self, node_id: str, status: NodeStatus, reason: str | None) -> None:
        node_record = self.record.nodes[node_id]
        node_record.status, node_record.error = status, reason
        if status == "skipped":
            self.emitter.emit(NodeSkipped(node=node_id, node_type=node_record.type, error=reason))

    # Executing a node (on a worker thread).
    def execute_node(self, node_id: str, device: str) -> Outcome:
        """Run one node on the calling worker thread: its outputs and run time, or its error."""
        node = self.graph.nodes[node_id]
        node_record = self.record.nodes[node_id]
        node_record.status, node_record.device, node_record.started = "running", device, time.time()
        emitter = self.emitter
        if emitter.active:
            emitter.emit(NodeStarted(node=node_id, node_type=node.spec.type, device=device))
        started = time.perf_counter()
        try:
            outputs = self._invoke(node, self.prepared[node_id], device)
        except RunCancelled as exc:
            node_record.finished = time.time()
            return Outcome(None, error=exc)
        except Exception as exc:
            node_record.finished = time.time()
            cause = StorageError.of(exc) if StorageError.is_disk(exc) else exc
            wrapped = exc if isinstance(exc, NodeExecutionError) else NodeExecutionError(node_id, node.spec.type, cause)
            return Outcome(None, error=wrapped, trace=traceback.format_exc())
        seconds = time.perf_counter() - started
        node_record.status, node_record.finished = "succeeded", time.time()
        node_record.seconds = rounded = round(seconds, 6)
        if emitter.active:
            emitter.emit(NodeFinished(node=node_id, node_type=node.spec.type, device=device, seconds=rounded))
        return Outcome(outputs, rounded)

    def _invoke(self, node: CompiledNode, prepared: Prepared, device: str) -> dict[str, Any]:
        """Gather the node's input values, have the backend run the node, and cache its outputs (by the plan's
        rule). Outputs cached on an accelerator count against that device's ledger until parked in RAM (a remote
        backend's devices are not in this process's model manager, which then keeps no ledger of them)."""
        values = dict(prepared.literals)
        computed = self.values
        for name, binding in node.dynamic:
            if isinstance(binding, LinkBinding):
                values[name] = computed[binding.node][binding.output]
            else:
                values[name] = self._value(binding, values.get(name))
        session = self.session
        cache = session.cache
        key = cache_key(node, prepared) if cache is not None else None
        produced = session.backend.invoke(node, prepared, device, values, self.scope, key)
        outputs = produced.outputs
        if key is not None and cache is not None:
            cache.put(key, outputs, produced.nbytes)
            if prepared.accelerated:
                session.models.hold_result(device, key, tensor_nbytes(outputs), lambda: cache.park(key, "cpu"))
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
                    inputs: Mapping[str, BoundValue]) -> NestedRun:
        """``ctx.call_graph``: the inner graph as a nested run of this session (its devices, cache, models; its
        nodes make no previews, their ids not being the outer graph's)."""
        env = self.env.entering(document.name or "graph")
        compiled = compile_graph(document, env)
        bound, _ = bind_inputs(document, dict(inputs), limits=self.session.limits)
        inner = EventEmitter(self.emitter.run_id, _forward_progress(ctx, len(compiled.nodes)))
        nested = Run(self.session, compiled, bound, inner, self.cancel, env)
        nested.execute()
        failed = [node_id for node_id, rec in nested.record.nodes.items() if rec.status == "failed"]
        if failed:
            raise EngineError(f"inner node {nested.record.nodes[failed[0]].error}")
        ctx.check_cancelled()
        return NestedRun(nested.outputs(), nested.record)


def _forward_progress(ctx: NodeContext, total: int) -> Listener:
    """Inner nodes of a nested graph show up as progress steps of the calling node."""
    finished = [0]

    def listen(event: Event) -> None:
        match event.data:
            case NodeFinished(node=node):
                finished[0] += 1
                ctx.progress(finished[0], total, f"{node}: finished")
            case NodesCached(nodes=nodes):
                finished[0] += len(nodes)
                ctx.progress(finished[0], total, f"{nodes[-1]}: cached" if len(nodes) == 1
                             else f"{len(nodes)} nodes cached")

    return listen
