"""ComfyUI's subgraphs, flattened: the editor's UI format keeps a subgraph's nodes in ``definitions.subgraphs`` and
places an instance of it as a node whose ``type`` is the subgraph's UUID. Each instance becomes its inner nodes, so
the importer maps what the subgraph really does instead of reporting the UUID.

Inner nodes take the ids ComfyUI's own API export gives them (``<instance id>:<inner id>``), so the UI chunk and the
API chunk of one picture name the same nodes. The instance's inputs feed the inner nodes its subgraph inputs reach
(a linked input through its link; a widget value through a primitive that holds it); what reads the instance's
outputs reads the inner nodes the subgraph's outputs come from. Widget values stay on the inner nodes; values the
instance promotes (``proxyWidgets``) override them. Subgraphs nested in subgraphs are expanded the same way.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeforge.nodes.importers.result import ImportFailed

INPUT_NODE, OUTPUT_NODE = -10, -20
MAX_NESTING = 16
OVERRIDES = "nodeforge_widget_overrides"
"""Key of an inner node's widget values that the instance overrides (read by ``comfy_ui``)."""
MAX_EXPANDED_NODES = 100_000
"""Nested instances multiply: a subgraph used ten times inside one used ten times is a hundred copies."""


@dataclass
class _Flat:
    """The flattened workflow being built: nodes, links in list form, and the next free link id."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    links: dict[int, list[Any]] = field(default_factory=dict)
    next_link: int = 1

    def new_link(self, origin: str, slot: int, kind: str) -> int:
        link_id = self.next_link
        self.next_link += 1
        self.links[link_id] = [link_id, origin, slot, None, None, kind]
        return link_id


def expand_subgraphs(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (the UI format) with every subgraph instance replaced by its inner nodes; unchanged without any."""
    definitions = data.get("definitions")
    raw_subgraphs = definitions.get("subgraphs") if isinstance(definitions, dict) else None
    subgraphs = {str(item["id"]): item for item in raw_subgraphs if isinstance(item, dict) and "id" in item} \
        if isinstance(raw_subgraphs, list) else {}
    nodes = [raw for raw in data.get("nodes") or [] if isinstance(raw, dict)]
    if not subgraphs or not any(str(raw.get("type")) in subgraphs for raw in nodes):
        return dict(data)
    flat = _Flat()
    for link in _link_list(data.get("links")):
        flat.links[link[0]] = link
    flat.next_link = max(flat.links, default=0) + 1
    pending = deque((raw, 0) for raw in nodes)
    while pending:
        raw, depth = pending.popleft()
        subgraph = subgraphs.get(str(raw.get("type")))
        if subgraph is None:
            flat.nodes.append(raw)
        else:
            if depth >= MAX_NESTING:
                raise ImportFailed(f"subgraph '{subgraph.get('name') or raw.get('type')}' nests more than "
                                   f"{MAX_NESTING} subgraphs deep (or contains itself)")
            pending.extend((inner, depth + 1) for inner in _expand(flat, raw, subgraph))
        if len(flat.nodes) + len(pending) > MAX_EXPANDED_NODES:
            raise ImportFailed(f"the workflow's subgraphs expand to more than {MAX_EXPANDED_NODES:,} nodes")
    expanded = dict(data)
    expanded["nodes"] = flat.nodes
    expanded["links"] = list(flat.links.values())
    return expanded


def _expand(flat: _Flat, instance: dict[str, Any], subgraph: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The inner nodes of one instance, wired to what feeds the instance and to what reads it."""
    prefix = str(instance.get("id"))
    mode = instance.get("mode")
    inner_links = {link[0]: link for link in _link_list(subgraph.get("links"))}
    renamed = {link_id: flat.next_link + i for i, link_id in enumerate(inner_links)}
    flat.next_link += len(renamed)
    feeds = _instance_feeds(flat, instance, subgraph)
    inner_nodes: list[dict[str, Any]] = []
    for raw in subgraph.get("nodes") or []:
        if not isinstance(raw, dict):
            continue
        node = copy.deepcopy(raw)
        node["id"] = f"{prefix}:{raw.get('id')}"
        if mode in (2, 4):
            node["mode"] = mode
        for slot in node.get("inputs") or []:
            if not isinstance(slot, dict) or slot.get("link") is None:
                continue
            link = inner_links.get(slot["link"])
            if link is None:
                slot["link"] = None
            elif link[1] == str(INPUT_NODE):
                slot["link"] = feeds.get(link[2])
            else:
                slot["link"] = renamed[link[0]]
        inner_nodes.append(node)
    _apply_proxy_widgets(instance, prefix, inner_nodes)
    for link_id, link in inner_links.items():
        if link[1] != str(INPUT_NODE) and link[3] != str(OUTPUT_NODE):
            new_id = renamed[link_id]
            flat.links[new_id] = [new_id, f"{prefix}:{link[1]}", link[2], None, None, link[5]]
    outputs = {link[4]: (f"{prefix}:{link[1]}", link[2]) for link in inner_links.values()
               if link[3] == str(OUTPUT_NODE) and link[1] != str(INPUT_NODE)}
    for link in flat.links.values():
        if link[1] == prefix and link[2] in outputs:
            link[1], link[2] = outputs[link[2]]
    return inner_nodes


def _instance_feeds(flat: _Flat, instance: Mapping[str, Any], subgraph: Mapping[str, Any]) -> dict[int, int | None]:
    """Subgraph input slot -> the link that feeds it: the instance's own link for that input, or a new primitive
    holding the instance's widget value for it; None leaves the inner widget's value as it is."""
    declared = [item for item in subgraph.get("inputs") or [] if isinstance(item, dict)]
    slots = [slot for slot in instance.get("inputs") or [] if isinstance(slot, dict)]
    by_name = {str(slot.get("name")): slot for slot in slots}
    values = _input_values(instance, slots)
    feeds: dict[int, int | None] = {}
    for index, item in enumerate(declared):
        name = str(item.get("name"))
        slot = by_name.get(name) or (slots[index] if index < len(slots) else None)
        if slot is not None and slot.get("link") is not None:
            feeds[index] = slot["link"]
        elif name in values:
            holder = f"{instance.get('id')}:input{index}"
            flat.nodes.append({"id": holder, "type": "PrimitiveNode", "mode": 0, "widgets_values": [values[name]]})
            feeds[index] = flat.new_link(holder, 0, str(item.get("type") or ""))
        else:
            feeds[index] = None
    return feeds


def _input_values(instance: Mapping[str, Any], slots: list[dict[str, Any]]) -> dict[str, Any]:
    """The instance's values for its widget inputs, by input name: promoted widgets (``proxyWidgets`` entries
    ``["-1", name]``) in the current format, else the widget inputs in order in the older one."""
    raw = instance.get("widgets_values")
    values = list(raw) if isinstance(raw, list) else []
    proxies = _proxies(instance)
    if proxies is not None:
        return {str(proxy[1]): value for proxy, value in zip(proxies, values, strict=False)
                if str(proxy[0]) == "-1"} if len(values) == len(proxies) else {}
    widgets = [str(slot.get("name")) for slot in slots if isinstance(slot.get("widget"), dict)]
    return dict(zip(widgets, values, strict=False))


def _proxies(instance: Mapping[str, Any]) -> list[list[Any]] | None:
    properties = instance.get("properties")
    proxies = properties.get("proxyWidgets") if isinstance(properties, dict) else None
    if not isinstance(proxies, list):
        return None
    return [proxy for proxy in proxies if isinstance(proxy, list) and len(proxy) == 2]


def _apply_proxy_widgets(instance: Mapping[str, Any], prefix: str, inner_nodes: list[dict[str, Any]]) -> None:
    """Values the instance shows for inner widgets (``properties.proxyWidgets``: [inner id, widget name] pairs, the
    values in the instance's ``widgets_values`` in the same order) replace the inner node's value."""
    proxies = _proxies(instance)
    values = instance.get("widgets_values")
    if proxies is None or not isinstance(values, list) or len(values) != len(proxies):
        return
    by_id = {node["id"]: node for node in inner_nodes}
    for (inner, name), value in zip(proxies, values, strict=True):
        node = by_id.get(f"{prefix}:{inner}")
        if node is not None:
            node.setdefault(OVERRIDES, {})[str(name)] = value


def _link_list(raw: Any) -> list[list[Any]]:
    """Links as ``[id, origin id (text), origin slot, target id (text), target slot, type]``, from the list form or
    the object form; malformed entries are left out (the reader reports links that cannot be found)."""
    links: list[list[Any]] = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, list) and len(item) >= 5:
            values = [item[0], item[1], item[2], item[3], item[4], item[5] if len(item) > 5 else ""]
        elif isinstance(item, dict):
            values = [item.get("id"), item.get("origin_id"), item.get("origin_slot"), item.get("target_id"),
                      item.get("target_slot"), item.get("type", "")]
        else:
            continue
        if isinstance(values[0], int) and not isinstance(values[0], bool) and values[1] is not None:
            values[1] = str(values[1])
            values[3] = None if values[3] is None else str(values[3])
            links.append(values)
    return links
