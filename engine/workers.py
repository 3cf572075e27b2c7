"""Stage 5 of a run: the nodes that must execute, run by a pool of workers as their inputs become ready.

Workers take ready nodes themselves and release dependents as they finish, so a chain runs on one thread without
hand-offs while independent branches spread over every worker. An accelerator node also needs a device: one
accelerator node per device at a time, across every run of the session (the slots and their condition belong to
the session, not to the run), placed first where its model is resident (``engine.scheduler.place``).
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from nodeforge.engine.scheduler import ReadySet, place

if TYPE_CHECKING:
    from nodeforge.engine.execute import Outcome, Run


class WorkerPool:
    """The workers of one run over the session's shared device slots."""

    def __init__(self, run: Run, to_run: set[str]) -> None:
        graph = run.graph
        self.run = run
        self.session = run.session
        self.ready = ReadySet(to_run, {node_id: graph.nodes[node_id].upstream for node_id in to_run}, graph.order,
                              lambda node_id: graph.nodes[node_id].spec.cls.accelerator)
        self.running = 0
        self.excluded: dict[str, frozenset[str]] = {}
        self.size = min(self.session.workers, len(to_run))
        if any(graph.nodes[node_id].spec.cls.accelerator for node_id in to_run):
            self.size = min(max(self.size, len(self.session.devices) + 1), len(to_run))

    def execute(self) -> None:
        """Run every node of the plan (or until cancelled); nodes left pending are marked cancelled."""
        threads = _torch_threads()
        with ThreadPoolExecutor(self.size, thread_name_prefix=f"run-{self.run.record.id}") as pool:
            for future in [pool.submit(self._work, threads) for _ in range(self.size)]:
                future.result()
        for node_id in self.run.graph.order:
            if node_id in self.ready.pending:
                self.run.mark(node_id, "cancelled", None)

    def _work(self, torch_threads: int | None) -> None:
        if torch_threads is not None:
            _set_torch_threads(torch_threads)
        state = self.session.state
        node_id: str | None = None
        device = "cpu"
        outcome: Outcome = (None, None, None)
        while True:
            with state:
                if node_id is not None:
                    self.running -= 1
                    self._release(node_id, device)
                    self.run.settle(node_id, device, outcome, self)
                picked = None
                while not self.run.cancel.is_set():
                    free = any(not slot.busy for slot in self.session.slots)
                    picked = self.ready.pop_first(self._device_for, free)
                    if picked is not None or (not self.running and not len(self.ready)):
                        break
                    state.wait()
                if picked is None:
                    state.notify_all()
                    return
                node_id, device = picked
                self._claim(node_id, device)
                self.running += 1
            outcome = self.run.execute_node(node_id, device)

    def _device_for(self, node_id: str) -> str | None:
        node = self.run.graph.nodes[node_id]
        estimates, backend = self.session.estimates, self.session.backend
        exclude = self.excluded.get(node_id, frozenset())
        if backend.down:
            exclude |= backend.down
        return place(self.run.prepared[node_id].models, estimates.run_time(node.spec.type), self.session.slots,
                     backend.resident_on, lambda model: backend.load_times.get(model, estimates.default_load),
                     time.monotonic(), exclude)

    def _claim(self, node_id: str, device: str) -> None:
        """Mark a device busy for an accelerator node until about when it should finish (called under state)."""
        node = self.run.graph.nodes[node_id]
        if not node.spec.cls.accelerator:
            return
        estimates, backend = self.session.estimates, self.session.backend
        loading = sum(backend.load_times.get(model, estimates.default_load)
                      for model in self.run.prepared[node_id].models if device not in backend.resident_on(model))
        for slot in self.session.slots:
            if slot.name == device:
                slot.busy_until = time.monotonic() + loading + estimates.run_time(node.spec.type)

    def _release(self, node_id: str, device: str) -> None:
        """Free the device of a finished accelerator node and wake every worker of every run (under state)."""
        if not self.run.graph.nodes[node_id].spec.cls.accelerator:
            return
        for slot in self.session.slots:
            if slot.name == device:
                slot.busy_until = None
        self.session.state.notify_all()


def _torch_threads() -> int | None:
    """The caller's torch thread count, when torch is loaded: OpenMP keeps it per thread, and worker threads would
    otherwise use every core whatever the caller set (results then differ in the last float bits)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def _set_torch_threads(count: int) -> None:
    torch = sys.modules["torch"]
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
