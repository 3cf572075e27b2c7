"""ComfyUI's UI format (what its editor saves): ``nodes`` with ``widgets_values`` by position, a ``links`` table
(lists or objects), Reroute and PrimitiveNode helpers, muted and bypassed nodes, positions and groups.

Reroutes are followed, a primitive's value replaces the link it feeds, a bypassed node passes its input of the same
type through. Following a link is a loop, not a recursion, and each link is followed once (its answer is kept), so
a chain of thousands of reroutes costs as much as its length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodeforge.nodes.importers.comfy_subgraph import OVERRIDES, expand_subgraphs
from nodeforge.nodes.importers.comfy_widgets import named_widgets
from nodeforge.nodes.importers.comfy_workflow import ComfyNode, Link, Workflow, check_links, groups_of, position
from nodeforge.nodes.importers.result import ImportFailed

UI_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MUTED, BYPASSED = 2, 4


@dataclass(frozen=True)
class _Value:
    value: Any


_MISSING = _Value(None)


def from_ui(data: Mapping[str, Any]) -> Workflow:
    """A workflow from the UI format (``data["nodes"]`` is a list); subgraph instances become their inner nodes."""
    data = expand_subgraphs(data)
    raw_nodes = [raw for raw in data["nodes"] if isinstance(raw, dict)]
    sources = _Sources({str(raw.get("id")): raw for raw in raw_nodes}, _links(data.get("links")))
    nodes: dict[str, ComfyNode] = {}
    for raw in raw_nodes:
        node_id, class_type = str(raw.get("id")), str(raw.get("type") or "")
        if class_type in UI_ONLY or raw.get("mode") in (MUTED, BYPASSED):
            continue
        inputs = named_widgets(class_type, raw.get("widgets_values"))
        overrides = raw.get(OVERRIDES)
        inputs.update(overrides if isinstance(overrides, dict) else {})
        for slot in _slots(raw):
            widget = slot.get("widget")
            widget = widget if isinstance(widget, dict) else {}
            name = str(widget.get("name") or slot.get("name") or "")
            source = sources.follow(slot["link"], f"node {node_id} ({class_type}) input '{name}'")
            if isinstance(source, Link):
                inputs[name] = source
            elif source is not _MISSING:
                inputs[name] = source.value
            elif not widget:
                inputs.pop(name, None)
        nodes[node_id] = ComfyNode(node_id, class_type, inputs, title=str(raw.get("title") or ""),
                                   pos=position(raw.get("pos")))
    if not nodes:
        raise ImportFailed("the workflow has no nodes to run")
    workflow = Workflow(nodes, "ui", groups_of(dict(data)))
    check_links(workflow)
    return workflow


def _slots(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A node's linked input slots (a field that is not a list holds none)."""
    slots = raw.get("inputs")
    return [slot for slot in slots if isinstance(slot, dict) and slot.get("link") is not None] \
        if isinstance(slots, list) else []


def _links(raw: Any) -> dict[int, tuple[str, int, str]]:
    """Link id -> (origin node id, origin slot, type), from the list form or the object form (schema 1)."""
    links: dict[int, tuple[str, int, str]] = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, list) and len(item) >= 5:
            link_id, origin, slot, kind = item[0], item[1], item[2], item[5] if len(item) > 5 else ""
        elif isinstance(item, dict):
            link_id, origin, slot, kind = item.get("id"), item.get("origin_id"), item.get("origin_slot"), \
                item.get("type", "")
        else:
            continue
        if _is_int(link_id) and _is_int(slot) and isinstance(origin, str | int) and not isinstance(origin, bool):
            links[link_id] = (str(origin), slot, kind if isinstance(kind, str) else "")
    return links


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Sources:
    """What feeds each UI link: a real node's output, a primitive's value, or nothing (a muted node)."""

    def __init__(self, by_id: Mapping[str, Mapping[str, Any]], links: Mapping[int, tuple[str, int, str]]) -> None:
        self.by_id = by_id
        self.links = links
        self._found: dict[int, Link | _Value] = {}
        self._through: dict[tuple[str, str], Any] = {}

    def follow(self, link_id: Any, where: str) -> Link | _Value:
        """The source of ``link_id`` through any reroutes and bypassed nodes; ``where`` names the input for
        errors."""
        walked: list[int] = []
        seen: set[str] = set()
        current = link_id
        while True:
            if not _is_int(current) or current not in self.links:
                raise ImportFailed(f"{where} uses link {_short(current)}, which is not in the workflow's links")
            if current in self._found:
                found = self._found[current]
                break
            walked.append(current)
            origin, slot, kind = self.links[current]
            raw = self.by_id.get(origin)
            if raw is None:
                raise ImportFailed(f"{where} is linked to node {origin}, which is not in the workflow")
            if origin in seen:
                raise ImportFailed(f"{where}: reroutes or bypassed nodes form a cycle through node {origin}")
            seen.add(origin)
            step = self._step(raw, origin, slot, kind, where)
            if isinstance(step, Link | _Value):
                found = step
                break
            current = step
        for walked_id in walked:
            self._found[walked_id] = found
        return found

    def _step(self, raw: Mapping[str, Any], origin: str, slot: int, kind: str, where: str) -> Link | _Value | Any:
        """The source when node ``origin`` is one, else the next link id to follow (found once per node and
        type, however many links leave the node)."""
        class_type, mode = str(raw.get("type") or ""), raw.get("mode")
        if class_type == "PrimitiveNode":
            values = raw.get("widgets_values")
            return _Value(values[0]) if isinstance(values, list) and values else _MISSING
        if mode == MUTED:
            return _MISSING
        if class_type == "Reroute" or mode == BYPASSED:
            key = (origin, kind)
            if key not in self._through:
                slots = _slots(raw)
                if mode == BYPASSED and class_type != "Reroute":
                    slots = [s for s in slots if s.get("type") == kind]
                self._through[key] = slots[0]["link"] if slots else _MISSING
            return self._through[key]
        if class_type in ("Note", "MarkdownNote"):
            raise ImportFailed(f"{where} is linked to a note (node {origin})")
        return Link(origin, slot)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."
