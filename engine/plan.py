"""Stage 4 of a run: what must execute, found by walking back from the requested outputs.

A node whose result is in the cache stops the walk, so an unchanged upstream is neither loaded nor run. The plan
is a function of the keys and the cache's answers only: it emits nothing and runs nothing; the run reports it.
Which results are cached at all is ``cache_key``: the plan reads by it, and the run writes by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeforge.engine.backend import Prepared, RunCache
from nodeforge.engine.compiler import CompiledGraph, CompiledNode


@dataclass
class Plan:
    """``to_run``: the nodes to execute; ``loaded``: cached outputs of the nodes where the walk stopped;
    ``cached``: nodes not run because their result, or all that depends on them, is cached; ``unneeded``: nodes
    no requested output depends on."""

    to_run: set[str] = field(default_factory=set)
    loaded: dict[str, dict[str, Any]] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    unneeded: list[str] = field(default_factory=list)


def cache_key(node: CompiledNode, prepared: Prepared) -> str | None:
    """The key a node's outputs are cached under, or None when they are not: a node with side effects always
    runs, and one without a key (an input that has none, such as an uncached upstream) cannot be found again."""
    return None if node.spec.cls.side_effects else prepared.key


def plan(graph: CompiledGraph, prepared: Mapping[str, Prepared], cache: RunCache | None) -> Plan:
    """The plan for the graph's outputs and its side-effect nodes (which always run)."""
    requested = {link.node for link in graph.outputs.values()}
    requested |= {node_id for node_id, node in graph.nodes.items() if node.spec.cls.side_effects}
    result = Plan()
    visited: set[str] = set()
    stack = sorted(requested)
    present = _Presence(graph, prepared, cache) if cache is not None else None
    while stack:
        node_id = stack.pop()
        if node_id in visited:
            continue
        visited.add(node_id)
        node = graph.nodes[node_id]
        key = cache_key(node, prepared[node_id])
        if present is not None and cache is not None and key is not None and present.has(key):
            outputs = cache.get(key)
            if outputs is not None:
                result.loaded[node_id] = outputs
                continue
        result.to_run.add(node_id)
        stack.extend(node.upstream)
    covered = _ancestors(graph, visited - result.to_run)
    for node_id in graph.nodes:
        if node_id in result.to_run:
            continue
        if node_id in visited or node_id in covered:
            result.cached.append(node_id)
        else:
            result.unneeded.append(node_id)
    return result


class _Presence:
    """Which keys the cache holds, asked in a few growing batches as the walk needs them: the key asked for plus
    the next unknown keys in reverse topological order (where the walk goes next), 1, then 8, 64... at a time. A
    fully cached run asks for its output keys only; a cold chain of 1,000 nodes costs five queries."""

    def __init__(self, graph: CompiledGraph, prepared: Mapping[str, Prepared], cache: RunCache) -> None:
        self._cache = cache
        self._known: dict[str, bool] = {}
        self._ahead = (key for node_id in reversed(graph.order) if (key := prepared[node_id].key) is not None)
        self._batch = 1

    def has(self, key: str) -> bool:
        known = self._known.get(key)
        if known is not None:
            return known
        batch = [key]
        for candidate in self._ahead:
            if candidate not in self._known and candidate != key:
                batch.append(candidate)
                if len(batch) >= self._batch:
                    break
        self._batch = min(self._batch * 8, 4096)
        found = self._cache.present(batch)
        for candidate in batch:
            self._known[candidate] = candidate in found
        return key in found


def _ancestors(graph: CompiledGraph, nodes: set[str]) -> set[str]:
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        for up in graph.nodes[stack.pop()].upstream:
            if up not in found:
                found.add(up)
                stack.append(up)
    return found
