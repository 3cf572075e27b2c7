"""The one shape every ComfyUI workflow is read into, whatever format ComfyUI wrote: real nodes only, each input a
literal or a ``Link``; and the checks every format shares (links name nodes that exist, and form no cycle)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nodeforge.nodes.importers.result import ImportFailed


@dataclass(frozen=True)
class Link:
    """An input fed by output ``slot`` of node ``node``."""

    node: str
    slot: int


@dataclass
class ComfyNode:
    id: str
    class_type: str
    inputs: dict[str, Any]
    title: str = ""
    pos: tuple[float, float] | None = None


@dataclass
class Workflow:
    """The nodes ComfyUI would execute; ``pos``/``groups`` come from the UI format when there is one."""

    nodes: dict[str, ComfyNode]
    format: str
    groups: list[dict[str, Any]] = field(default_factory=list)

    def describe(self, node_id: str) -> str:
        node = self.nodes.get(node_id)
        return f"{node_id} ({node.class_type})" if node else node_id


MAX_COORDINATE = 1e9
"""Editor coordinates beyond this are not a layout (and would overflow where they are rounded)."""


def check_links(workflow: Workflow) -> None:
    """Every link names a node of the workflow, and the links form no cycle (one pass, without recursion)."""
    for node in workflow.nodes.values():
        for name, value in node.inputs.items():
            if isinstance(value, Link) and value.node not in workflow.nodes:
                raise ImportFailed(f"node {workflow.describe(node.id)} input '{name}' is linked to node "
                                   f"{value.node}, which is not in the workflow")
    state: dict[str, int] = {}
    for start in workflow.nodes:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            node_id, leaving = stack.pop()
            if leaving:
                state[node_id] = 2
                path.pop()
                continue
            if state.get(node_id) == 2:
                continue
            if state.get(node_id) == 1:
                loop = [*path[path.index(node_id):], node_id]
                raise ImportFailed("the workflow has a cycle: " + " -> ".join(workflow.describe(n) for n in loop))
            state[node_id] = 1
            path.append(node_id)
            stack.append((node_id, True))
            for value in workflow.nodes[node_id].inputs.values():
                if isinstance(value, Link) and state.get(value.node) != 2:
                    stack.append((value.node, False))


def position(raw: Any) -> tuple[float, float] | None:
    """An editor position (``[x, y]`` or ``{"0": x, "1": y}``); None unless both are finite numbers in range."""
    if isinstance(raw, dict):
        raw = [raw.get("0"), raw.get("1")]
    if not isinstance(raw, list | tuple) or len(raw) < 2:
        return None
    x, y = coordinate(raw[0]), coordinate(raw[1])
    return None if x is None or y is None else (x, y)


def coordinate(raw: Any) -> float | None:
    """A finite coordinate within ``MAX_COORDINATE``, else None."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    try:
        value = float(raw)
    except OverflowError:  # an integer too large for a float
        return None
    return value if math.isfinite(value) and abs(value) <= MAX_COORDINATE else None


def groups_of(ui: dict[str, Any]) -> list[dict[str, Any]]:
    """The editor's groups (title, bounding box, colour); a group whose box is not four numbers is left out."""
    raw = ui.get("groups")
    groups = []
    for group in raw if isinstance(raw, list) else []:
        if not isinstance(group, dict) or not isinstance(group.get("bounding"), list):
            continue
        box = [coordinate(value) for value in group["bounding"]]
        if len(box) != 4 or any(value is None for value in box):
            continue
        groups.append({"title": str(group.get("title") or "Group")[:200],
                       "bounding": [round(value) for value in box if value is not None],
                       **({"color": group["color"]} if isinstance(group.get("color"), str) else {})})
    return groups
