"""Stage 4 of a run: what must execute, found by walking back from the requested outputs.

A node whose result is in the cache stops the walk, so an unchanged upstream is neither loaded nor run. The plan
is a function of the keys and the cache's answers only: it emits nothing and runs nothing; the run reports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeforge.engine.backend import Prepared
from nodeforge.engine.cache import ResultCache
from nodeforge.engine.graph import CompiledGraph


@dataclass
class Plan:
    """``to_run``: the nodes to execute; ``loaded``: cached outputs of the nodes where the walk stopped;
    ``cached``: nodes not run because their result, or all that depends on them, is cached; ``unneeded``: nodes
    no requested output depends on."""

    to_run: set[str] = field(default_factory=set)
    loaded: dict[str, dict[str, Any]] = field(default_factory=dict)
    cached: list[str] = field(default_factory=list)
    unneeded: list[str] = field(default_factory=list)


def plan(graph: CompiledGraph, prepared: Mapping[str, Prepared], cache: ResultCache | None) -> Plan:
    """The plan for the graph's outputs and its side-effect nodes (which always run)."""
    requested = {link.node for link in graph.outputs.values()}
    requested |= {node_id for node_id, node in graph.nodes.items() if node.spec.cls.side_effects}
    result = Plan()
    visited: set[str] = set()
    stack = sorted(requested)
    keys = [entry.key for entry in prepared.values() if entry.key is not None]
    present = cache.present(keys) if cache is not None else set()
    while stack:
        node_id = stack.pop()
        if node_id in visited:
            continue
        visited.add(node_id)
        node = graph.nodes[node_id]
        key = prepared[node_id].key
        if cache is not None and key in present and not node.spec.cls.side_effects:
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


def _ancestors(graph: CompiledGraph, nodes: set[str]) -> set[str]:
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        for up in graph.nodes[stack.pop()].upstream:
            if up not in found:
                found.add(up)
                stack.append(up)
    return found
