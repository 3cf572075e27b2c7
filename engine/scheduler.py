"""Which node runs next: a pure, single-threaded ready set that the executor's workers consult under one lock.

Ready nodes come out longest remaining path first, so the critical path starts early and parallel branches
overlap it; a failure removes the node's descendants in one step.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence


class ReadySet:
    """Dependency bookkeeping for the nodes of one run that must execute."""

    def __init__(self, to_run: Iterable[str], upstream: Mapping[str, Sequence[str]], order: Sequence[str]) -> None:
        members = set(to_run)
        self._waiting = {node: sum(1 for up in upstream[node] if up in members) for node in members}
        self._dependents: dict[str, list[str]] = {node: [] for node in members}
        for node in members:
            for up in upstream[node]:
                if up in members:
                    self._dependents[up].append(node)
        self._rank = self._remaining_path_lengths(members, order)
        self._position = {node: index for index, node in enumerate(order) if node in members}
        self._heap = [self._entry(node) for node, count in self._waiting.items() if count == 0]
        heapq.heapify(self._heap)
        self.pending = set(members)

    def _remaining_path_lengths(self, members: set[str], order: Sequence[str]) -> dict[str, int]:
        length: dict[str, int] = {}
        for node in reversed(order):
            if node in members:
                length[node] = 1 + max((length[child] for child in self._dependents[node]), default=0)
        return length

    def _entry(self, node: str) -> tuple[int, int, str]:
        return (-self._rank[node], self._position[node], node)

    def __len__(self) -> int:
        return len(self._heap)

    def pop(self) -> str | None:
        """The ready node with the longest remaining path, or None when nothing is ready."""
        if not self._heap:
            return None
        node = heapq.heappop(self._heap)[2]
        self.pending.discard(node)
        return node

    def complete(self, node: str) -> int:
        """Mark a node done; returns how many dependents became ready."""
        newly = 0
        for child in self._dependents[node]:
            self._waiting[child] -= 1
            if self._waiting[child] == 0 and child in self.pending:
                heapq.heappush(self._heap, self._entry(child))
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
