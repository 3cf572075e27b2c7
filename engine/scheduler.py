"""Which node runs next, and where: pure, single-threaded components, consulted holding the session's device slots
(``engine.slots``) by the worker pool (``engine.workers``), which owns a run's ``ReadySet``.

``ReadySet``: ready nodes come out longest remaining path first, so the critical path starts early and parallel
branches overlap it; a failure removes the node's descendants in one step.
``place``: an accelerator node goes to the device where it would finish earliest, a resident model costing no
load time, so affinity falls out of the cost model and a model is not loaded twice without need.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass


class ReadySet:
    """Dependency bookkeeping for the nodes of one run that must execute.

    Ready nodes wait in two priority queues, CPU nodes and accelerator nodes, so that finding work when every
    device is busy costs nothing, and placing an accelerator node looks at the best few candidates only.
    """

    CANDIDATES = 32

    def __init__(self, to_run: Iterable[str], upstream: Mapping[str, Sequence[str]], order: Sequence[str],
                 accelerated: Callable[[str], bool] = lambda node: False) -> None:
        members = set(to_run)
        waiting: dict[str, int] = {}
        dependents: dict[str, list[str]] = {}
        position: dict[str, int] = {}
        for index, node in enumerate(order):  # topological: a node's upstream members come before it
            if node not in members:
                continue
            position[node] = index
            dependents[node] = []
            count = 0
            for up in upstream[node]:
                if up in members:
                    count += 1
                    dependents[up].append(node)
            waiting[node] = count
        rank: dict[str, int] = {}  # the longest path from a node to the end of the plan, in nodes
        for node in reversed(order):
            children = dependents.get(node)
            if children is not None:
                longest = 0
                for child in children:
                    if rank[child] > longest:
                        longest = rank[child]
                rank[node] = longest + 1
        self._waiting, self._dependents, self._rank, self._position = waiting, dependents, rank, position
        self.accelerated = frozenset(node for node in members if accelerated(node))
        self._cpu: list[tuple[int, int, str]] = []
        self._devices: list[tuple[int, int, str]] = []
        for node, count in waiting.items():
            if count == 0:
                self._queue_of(node).append(self._entry(node))
        heapq.heapify(self._cpu)
        heapq.heapify(self._devices)
        self.pending = members

    def _entry(self, node: str) -> tuple[int, int, str]:
        return (-self._rank[node], self._position[node], node)

    def _queue_of(self, node: str) -> list[tuple[int, int, str]]:
        return self._devices if node in self.accelerated else self._cpu

    def __len__(self) -> int:
        return len(self._cpu) + len(self._devices)

    @property
    def waits_for_device(self) -> bool:
        """Whether an accelerator node is ready (only then does a free device matter)."""
        return bool(self._devices)

    def pop_first(self, place_on_device: Callable[[str], str | None],
                  devices_free: bool = True) -> tuple[str, str] | None:
        """The best ready node that can start now: (node, device). CPU nodes run on "cpu"; an accelerator node
        needs ``place_on_device`` to name a free device, tried for the best few candidates only."""
        placed: tuple[tuple[int, int, str], str] | None = None
        if devices_free and self._devices:
            tried: list[tuple[int, int, str]] = []
            while self._devices and len(tried) < self.CANDIDATES:
                entry = heapq.heappop(self._devices)
                device = place_on_device(entry[2])
                if device is not None:
                    placed = (entry, device)
                    break
                tried.append(entry)
            for entry in tried:
                heapq.heappush(self._devices, entry)
        if self._cpu and (placed is None or self._cpu[0] < placed[0]):
            if placed is not None:
                heapq.heappush(self._devices, placed[0])
            node = heapq.heappop(self._cpu)[2]
            self.pending.discard(node)
            return node, "cpu"
        if placed is None:
            return None
        self.pending.discard(placed[0][2])
        return placed[0][2], placed[1]

    def push_back(self, node: str) -> None:
        """Return a node to the ready queue (a retry on another device)."""
        self.pending.add(node)
        heapq.heappush(self._queue_of(node), self._entry(node))

    def complete(self, node: str) -> int:
        """Mark a node done; returns how many dependents became ready."""
        newly = 0
        for child in self._dependents[node]:
            self._waiting[child] -= 1
            if self._waiting[child] == 0 and child in self.pending:
                heapq.heappush(self._queue_of(child), self._entry(child))
                newly += 1
        return newly

    def drop_descendants(self, node: str) -> list[str]:
        """Remove everything downstream of a failed node; returns the removed nodes in dependency order."""
        dropped: list[str] = []
        stack = list(reversed(self._dependents[node]))
        while stack:
            child = stack.pop()
            if child in self.pending:
                self.pending.discard(child)
                dropped.append(child)
                stack.extend(reversed(self._dependents[child]))
        return dropped


class Estimates:
    """Learned run times per node type (exponential moving averages), shared by the runs of one session; load
    times come from the backend, which sees the loads (``default_load`` until it has seen one)."""

    def __init__(self, default_run: float = 1.0, default_load: float = 5.0, weight: float = 0.3) -> None:
        self.default_run = default_run
        self.default_load = default_load
        self.weight = weight
        self._run: dict[str, float] = {}

    def run_time(self, node_type: str) -> float:
        return self._run.get(node_type, self.default_run)

    def observe_run(self, node_type: str, seconds: float) -> None:
        self._run[node_type] = self._blend(self._run.get(node_type), seconds)

    def _blend(self, old: float | None, new: float) -> float:
        return new if old is None else old + self.weight * (new - old)


@dataclass
class DeviceSlot:
    """What the scheduler knows of one device: whether an accelerator node runs there and until when."""

    name: str
    busy_until: float | None = None

    @property
    def busy(self) -> bool:
        return self.busy_until is not None


def place(models: Sequence[str], run_time: float, slots: Sequence[DeviceSlot],
          resident: Callable[[str], Sequence[str]], load_time: Callable[[str], float], now: float,
          exclude: frozenset[str] = frozenset()) -> str | None:
    """The device where a node would finish earliest (a resident model costs no load time), or None when that
    device is busy: waiting for it beats loading a second copy elsewhere. Pure: state in, decision out."""
    best: tuple[float, int, str] | None = None
    for order, slot in enumerate(slots):
        if slot.name in exclude:
            continue
        start = max(now, slot.busy_until) if slot.busy_until is not None else now
        loading = sum(load_time(model) for model in models if slot.name not in resident(model))
        finish = start + loading + run_time
        candidate = (finish, order, slot.name)
        if best is None or candidate < best:
            best = candidate
    if best is None:
        return None
    chosen = slots[best[1]]
    return None if chosen.busy else chosen.name
