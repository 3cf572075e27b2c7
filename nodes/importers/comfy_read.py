"""Reading ComfyUI workflows into one shape, whatever ComfyUI wrote.

- the API format (what ComfyUI executes, "Save (API)"): ``{id: {"class_type", "inputs"}}``, a link being
  ``[source id, output slot]``; also wrapped as ``{"prompt": ...}`` the way it is queued;
- the UI format (what its editor saves): ``nodes`` with ``widgets_values`` by position, a ``links`` table (lists or
  objects), Reroute and PrimitiveNode helpers, muted and bypassed nodes, positions and groups;
- a PNG that ComfyUI saved, with the API format in its ``prompt`` text chunk and the UI format in ``workflow``.

Both become a ``Workflow``: real nodes only, each input a literal or a ``Link``. Reroutes are followed, a
primitive's value replaces the link it feeds, a bypassed node passes its input of the same type through. A link to a
node that is not there and a cycle are errors (``ImportFailed``) naming the nodes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodeforge.nodes.importers.comfy_widgets import named_widgets
from nodeforge.nodes.importers.result import ImportFailed

UI_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MUTED, BYPASSED = 2, 4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def png_texts(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG (tEXt, zTXt, iTXt); ImportFailed when the bytes are not a readable PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            texts = {str(key): value for key, value in picture.info.items() if isinstance(value, str)}
            if not texts:
                texts = {str(key): str(value) for key, value in (getattr(picture, "text", {}) or {}).items()}
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImportFailed(f"cannot read the PNG file ({exc})") from None
    return texts


def read_comfy(data: bytes | Mapping[str, Any]) -> Workflow:
    """A workflow from a file's bytes (JSON or PNG) or from already parsed JSON."""
    if isinstance(data, bytes | bytearray):
        if bytes(data[:8]) == PNG_SIGNATURE:
            return _from_png(png_texts(bytes(data)))
        parsed = _json(bytes(data), "the file")
    else:
        parsed = data
    return from_json(parsed)


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImportFailed(f"{what} is neither a PNG nor JSON ({exc})") from None


def _from_png(texts: Mapping[str, str]) -> Workflow:
    if "prompt" not in texts and "workflow" not in texts:
        found = ", ".join(sorted(texts)) or "none"
        raise ImportFailed(f"this PNG carries no ComfyUI workflow (no 'prompt' or 'workflow' text chunk; found: "
                           f"{found})")
    ui = _json(texts["workflow"].encode(), "the PNG's 'workflow' chunk") if "workflow" in texts else None
    if "prompt" not in texts:
        return from_json(ui)
    api = _json(texts["prompt"].encode(), "the PNG's 'prompt' chunk")
    return _merged(api, ui, "png")


def from_json(data: Any) -> Workflow:
    """A workflow from parsed JSON in either format."""
    if not isinstance(data, dict):
        raise ImportFailed("not a ComfyUI workflow: the JSON is not an object")
    if data.get("schema") == "nodeforge/graph@1":
        raise ImportFailed("this is already a nodeforge graph: open or run it as it is")
    if isinstance(data.get("nodes"), list):
        return _from_ui(data)
    if isinstance(data.get("prompt"), dict):
        extra = _object(data.get("extra_data"))
        return _merged(data["prompt"], _object(extra.get("extra_pnginfo")).get("workflow"), "api")
    if data and all(isinstance(node, dict) and "class_type" in node for node in data.values()):
        return _merged(data, None, "api")
    raise ImportFailed("not a ComfyUI workflow: expected the API format ({id: {class_type, inputs}}) or the UI "
                       "format ({nodes: [...], links: [...]})")


def _merged(api: Any, ui: Any, source: str) -> Workflow:
    """The API format's nodes with the UI format's positions, titles and groups (same node ids) when given."""
    workflow = _from_api(api, source)
    if isinstance(ui, dict) and isinstance(ui.get("nodes"), list):
        for raw in ui["nodes"]:
            if not isinstance(raw, dict):
                continue
            node = workflow.nodes.get(str(raw.get("id")))
            if node is not None:
                node.pos = _pos(raw.get("pos"))
                node.title = node.title or str(raw.get("title") or "")
        workflow.groups = _groups(ui)
        workflow.format = f"{source}+ui"
    return workflow


def _from_api(data: Any, source: str) -> Workflow:
    if not isinstance(data, dict) or not data:
        raise ImportFailed("not a ComfyUI workflow: the API format is an object of nodes by id")
    nodes: dict[str, ComfyNode] = {}
    for key, raw in data.items():
        node_id = str(key)
        if not isinstance(raw, dict) or not isinstance(raw.get("class_type"), str):
            raise ImportFailed(f"node {node_id} has no class_type: not a ComfyUI API-format node")
        inputs = {str(name): _api_value(value) for name, value in _object(raw.get("inputs")).items()}
        meta = _object(raw.get("_meta"))
        nodes[node_id] = ComfyNode(node_id, raw["class_type"], inputs, title=str(meta.get("title") or ""))
    workflow = Workflow(nodes, source)
    check_links(workflow)
    return workflow


def _api_value(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str | int) \
            and not isinstance(value[0], bool) and isinstance(value[1], int) and not isinstance(value[1], bool):
        return Link(str(value[0]), value[1])
    return value


def _from_ui(data: Mapping[str, Any]) -> Workflow:
    raw_nodes = [raw for raw in data["nodes"] if isinstance(raw, dict)]
    by_id = {str(raw.get("id")): raw for raw in raw_nodes}
    links = _ui_links(data.get("links"))
    nodes: dict[str, ComfyNode] = {}
    for raw in raw_nodes:
        node_id, class_type = str(raw.get("id")), str(raw.get("type") or "")
        if class_type in UI_ONLY or raw.get("mode") in (MUTED, BYPASSED):
            continue
        inputs = named_widgets(class_type, raw.get("widgets_values"))
        for slot in raw.get("inputs") or []:
            if not isinstance(slot, dict) or slot.get("link") is None:
                continue
            widget = _object(slot.get("widget"))
            name = str(widget.get("name") or slot.get("name") or "")
            where = f"node {node_id} ({class_type}) input '{name}'"
            source = _ui_source(slot["link"], links, by_id, where, set())
            if isinstance(source, Link):
                inputs[name] = source
            elif source is not _MISSING:
                inputs[name] = source.value
            elif not widget:
                inputs.pop(name, None)
        nodes[node_id] = ComfyNode(node_id, class_type, inputs, title=str(raw.get("title") or ""),
                                   pos=_pos(raw.get("pos")))
    if not nodes:
        raise ImportFailed("the workflow has no nodes to run")
    workflow = Workflow(nodes, "ui", _groups(data))
    check_links(workflow)
    return workflow


@dataclass(frozen=True)
class _Value:
    value: Any


_MISSING = _Value(None)


def _ui_links(raw: Any) -> dict[int, tuple[str, int, str]]:
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
        if isinstance(link_id, int) and isinstance(slot, int):
            links[link_id] = (str(origin), slot, str(kind))
    return links


def _ui_source(link_id: Any, links: Mapping[int, tuple[str, int, str]], by_id: Mapping[str, Any], where: str,
               seen: set[str]) -> Link | _Value:
    """What feeds a UI link: a real node's output, a primitive's value, or nothing (a muted node)."""
    if not isinstance(link_id, int) or link_id not in links:
        raise ImportFailed(f"{where} uses link {link_id}, which is not in the workflow's links")
    origin, slot, kind = links[link_id]
    raw = by_id.get(origin)
    if raw is None:
        raise ImportFailed(f"{where} is linked to node {origin}, which is not in the workflow")
    if origin in seen:
        raise ImportFailed(f"{where}: reroutes or bypassed nodes form a cycle through node {origin}")
    class_type, mode = str(raw.get("type") or ""), raw.get("mode")
    if class_type == "PrimitiveNode":
        values = raw.get("widgets_values")
        return _Value(values[0]) if isinstance(values, list) and values else _MISSING
    if mode == MUTED:
        return _MISSING
    if class_type == "Reroute" or mode == BYPASSED:
        slots = [s for s in raw.get("inputs") or [] if isinstance(s, dict) and s.get("link") is not None]
        if mode == BYPASSED and class_type != "Reroute":
            slots = [s for s in slots if str(s.get("type")) == kind] or []
        if not slots:
            return _MISSING
        return _ui_source(slots[0]["link"], links, by_id, where, seen | {origin})
    if class_type in ("Note", "MarkdownNote"):
        raise ImportFailed(f"{where} is linked to a note (node {origin})")
    return Link(origin, slot)


def check_links(workflow: Workflow) -> None:
    """Every link names a node of the workflow, and the links form no cycle."""
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


def _object(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {}


def _pos(raw: Any) -> tuple[float, float] | None:
    if isinstance(raw, dict):
        raw = [raw.get("0"), raw.get("1")]
    if isinstance(raw, list | tuple) and len(raw) >= 2 and all(isinstance(v, int | float) for v in raw[:2]):
        return float(raw[0]), float(raw[1])
    return None


def _groups(ui: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = []
    for group in ui.get("groups") or []:
        if isinstance(group, dict) and isinstance(group.get("bounding"), list) and len(group["bounding"]) == 4:
            groups.append({"title": str(group.get("title") or "Group"),
                           "bounding": [round(float(v)) for v in group["bounding"]],
                           **({"color": group["color"]} if isinstance(group.get("color"), str) else {})})
    return groups
