"""Stage 5 of a run: the nodes that must execute, run by a pool of workers as their inputs become ready.

Workers take ready nodes themselves and release dependents as they finish, so a chain runs on one thread without
hand-offs while independent branches spread over every worker. The pool owns the run's ready set and moves each
node through it (ready, running, then done, retried elsewhere or failed with its descendants); the run records
and announces what happened. A node that needs a device with its inputs (``Prepared.accelerated``) also leases
one of the session's ``DeviceSlots``: one such node per device at a time, across every run of the session,
placed first where its model is resident (``engine.scheduler.place``).
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

from nodeforge.engine.scheduler import ReadySet

if TYPE_CHECKING:
    from nodeforge.engine.execute import Outcome, Run
    from nodeforge.engine.slots import DeviceSlots


class WorkerPool:
    """The workers of one run over the session's shared device slots. The calling thread is the first worker;
    another thread starts only when more nodes are ready than workers are free to take them (up to ``workers``), so
    a chain, or a run of one node, never pays for threads it cannot use."""

    def __init__(self, run: Run, to_run: set[str], slots: DeviceSlots, workers: int) -> None:
        graph = run.graph
        prepared = run.prepared
        self.run = run
        self.slots = slots
        nodes = graph.nodes
        self.ready = ReadySet(to_run, {node_id: nodes[node_id].upstream for node_id in to_run}, graph.order,
                              lambda node_id: prepared[node_id].accelerated)
        self.running = 0
        self.excluded: dict[str, frozenset[str]] = {}
        self.size = min(workers, len(to_run))
        if self.ready.accelerated:
            self.size = min(max(self.size, len(slots.devices) + 1), len(to_run))
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
        """Start workers for ready nodes that no free worker will take (called holding the slots)."""
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
        with self.slots:
            self.slots.notify_all()

    def _work(self) -> None:
        slots, ready = self.slots, self.ready
        cancel = self.run.cancel
        node_id: str | None = None
        device = "cpu"
        outcome: Outcome | None = None
        while True:
            with slots:
                if node_id is not None and outcome is not None:
                    self.running -= 1
                    self._settle(node_id, device, outcome)
                picked = None
                while not cancel.is_set() and not self._errors:
                    picked = ready.pop_first(self._device_for, ready.waits_for_device and slots.any_free())
                    if picked is not None or (not self.running and not len(ready)):
                        break
                    self._idle += 1
                    try:
                        slots.wait()
                    finally:
                        self._idle -= 1
                if picked is None:
                    slots.notify_all()
                    return
                node_id, device = picked
                if node_id in ready.accelerated:
                    slots.lease(device, self.run.prepared[node_id].models, self.run.graph.nodes[node_id].spec.type)
                self.running += 1
                if len(ready) > self._idle and self._started < self.size:
                    self._spawn()
            outcome = self.run.execute_node(node_id, device)

    def _device_for(self, node_id: str) -> str | None:
        return self.slots.place(self.run.prepared[node_id].models, self.run.graph.nodes[node_id].spec.type,
                                self.excluded.get(node_id, frozenset()))

    def _settle(self, node_id: str, device: str, outcome: Outcome) -> None:
        """Move a finished node on (holding the slots): free its device, let the run record it, then release its
        dependents, queue it again for another device, or drop what depends on it."""
        ready, slots = self.ready, self.slots
        accelerated = node_id in ready.accelerated
        if accelerated:
            slots.release(device, self.run.graph.nodes[node_id].spec.type, outcome.seconds)
        retry = accelerated and node_id not in self.excluded and slots.can_retry(device)
        verdict = self.run.settle(node_id, device, outcome, retry)
        if verdict == "done":
            newly = ready.complete(node_id)
            if newly > 1:
                slots.notify(newly - 1)
        elif verdict == "retry":
            self.excluded[node_id] = frozenset({device})
            ready.push_back(node_id)
            slots.notify_all()
        elif verdict == "failed":
            self.run.skip(ready.drop_descendants(node_id), node_id)


def _torch_threads() -> int | None:
    """The caller's torch thread count, when torch is loaded: OpenMP keeps it per thread, and worker threads would
    otherwise use every core whatever the caller set (results then differ in the last float bits)."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def _set_torch_threads(count: int) -> None:
    torch = sys.modules["torch"]
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
