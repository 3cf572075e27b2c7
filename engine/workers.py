"""Stage 5 of a run: the nodes that must execute, run by a pool of workers as their inputs become ready.

Workers take ready nodes themselves and release dependents as they finish, so a chain runs on one thread without
hand-offs while independent branches spread over every worker. An accelerator node also needs a device: one
accelerator node per device at a time, across every run of the session (the slots and their condition belong to
the session, not to the run), placed first where its model is resident (``engine.scheduler.place``).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING

from nodeforge.engine.scheduler import ReadySet, place

if TYPE_CHECKING:
    from nodeforge.engine.execute import Outcome, Run


class WorkerPool:
    """The workers of one run over the session's shared device slots. The calling thread is the first worker;
    another thread starts only when more nodes are ready than workers are free to take them (up to ``size``), so a
    chain, or a run of one node, never pays for threads it cannot use."""

    def __init__(self, run: Run, to_run: set[str]) -> None:
        graph = run.graph
        self.run = run
        self.session = run.session
        nodes = graph.nodes
        self.ready = ReadySet(to_run, {node_id: nodes[node_id].upstream for node_id in to_run}, graph.order,
                              lambda node_id: nodes[node_id].spec.cls.accelerator)
        self.running = 0
        self.excluded: dict[str, frozenset[str]] = {}
        self.size = min(self.session.workers, len(to_run))
        if any(nodes[node_id].spec.cls.accelerator for node_id in to_run):
            self.size = min(max(self.size, len(self.session.devices) + 1), len(to_run))
        self._started = 1
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        self._torch_threads: int | None = None

    def execute(self) -> None:
        """Run every node of the plan (or until cancelled); nodes left pending are marked cancelled."""
        self._torch_threads = _torch_threads()
        try:
            self._work()
        except BaseException as exc:
            self._abort(exc)
        finally:
            while self._threads:
                self._threads.pop().join()
        if self._errors:
            raise self._errors[0]
        pending = self.ready.pending
        for node_id in self.run.graph.order:
            if node_id in pending:
                self.run.mark(node_id, "cancelled", None)

    def _spawn(self) -> None:
        """Start workers for ready nodes that no free worker will take (called under the session's condition)."""
        wanted = min(len(self.ready) - self._idle, self.size - self._started)
        for _ in range(max(wanted, 0)):
            self._started += 1
            thread = threading.Thread(target=self._thread_main, daemon=True,
                                      name=f"run-{self.run.record.id}-{self._started}")
            self._threads.append(thread)
            thread.start()

    def _thread_main(self) -> None:
        if self._torch_threads is not None:
            _set_torch_threads(self._torch_threads)
        try:
            self._work()
        except BaseException as exc:
            self._abort(exc)

    def _abort(self, exc: BaseException) -> None:
        """A worker died of an engine error (or an interrupt): the others stop taking nodes, and it is raised."""
        self._errors.append(exc)
        with self.session.state:
            self.session.state.notify_all()

    def _work(self) -> None:
        state = self.session.state
        ready, slots = self.ready, self.session.slots
        cancel = self.run.cancel
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
                while not cancel.is_set() and not self._errors:
                    free = ready.waits_for_device and any(not slot.busy for slot in slots)
                    picked = ready.pop_first(self._device_for, free)
                    if picked is not None or (not self.running and not len(ready)):
                        break
                    self._idle += 1
                    try:
                        state.wait()
                    finally:
                        self._idle -= 1
                if picked is None:
                    state.notify_all()
                    return
                node_id, device = picked
                self._claim(node_id, device)
                self.running += 1
                if len(ready) > self._idle and self._started < self.size:
                    self._spawn()
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
        if node_id not in self.ready.accelerated:
            return
        node = self.run.graph.nodes[node_id]
        estimates, backend = self.session.estimates, self.session.backend
        loading = sum(backend.load_times.get(model, estimates.default_load)
                      for model in self.run.prepared[node_id].models if device not in backend.resident_on(model))
        for slot in self.session.slots:
            if slot.name == device:
                slot.busy_until = time.monotonic() + loading + estimates.run_time(node.spec.type)

    def _release(self, node_id: str, device: str) -> None:
        """Free the device of a finished accelerator node and wake every worker of every run (under state)."""
        if node_id not in self.ready.accelerated:
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
