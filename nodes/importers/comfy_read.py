"""Reading ComfyUI workflows into one shape, whatever ComfyUI wrote.

- the API format (what ComfyUI executes, "Save (API)"): ``{id: {"class_type", "inputs"}}``, a link being
  ``[source id, output slot]``; also wrapped as ``{"prompt": ...}`` the way it is queued;
- the UI format (what its editor saves): ``nodes`` with ``widgets_values`` by position, a ``links`` table (lists or
  objects), Reroute and PrimitiveNode helpers, muted and bypassed nodes, positions and groups;
- a PNG that ComfyUI saved, with the API format in its ``prompt`` text chunk and the UI format in ``workflow``;
- a WebP that ComfyUI saved, with the same two as ``prompt:``/``workflow:`` EXIF entries (``webp_exif``).

Both become a ``Workflow``: real nodes only, each input a literal or a ``Link``. Reroutes are followed, a
primitive's value replaces the link it feeds, a bypassed node passes its input of the same type through. A link to a
node that is not there and a cycle are errors (``ImportFailed``) naming the nodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nodeforge.nodes.importers.comfy_subgraph import expand_subgraphs
from nodeforge.nodes.importers.comfy_ui import from_ui
from nodeforge.nodes.importers.comfy_workflow import ComfyNode, Link, Workflow, check_links, groups_of, position
from nodeforge.nodes.importers.png_text import PNG_SIGNATURE, PngTexts, png_texts
from nodeforge.nodes.importers.result import ImportFailed
from nodeforge.nodes.importers.webp_exif import is_webp, webp_texts

MAX_DEPTH = 64
"""JSON nested deeper than this is refused: a workflow needs a handful of levels, and what is nested deeper would
only meet recursion in whatever reads it next."""


def read_comfy(data: bytes | Mapping[str, Any] | PngTexts) -> Workflow:
    """A workflow from a file's bytes (JSON or PNG), a PNG's text chunks, or already parsed JSON."""
    if isinstance(data, PngTexts):
        return _from_png(data)
    if isinstance(data, bytes | bytearray):
        if bytes(data[:8]) == PNG_SIGNATURE:
            return _from_png(png_texts(bytes(data)))
        if is_webp(bytes(data[:12])):
            return _from_png(webp_texts(bytes(data)), "WebP")
        picture = _picture_kind(bytes(data[:12]))
        if picture is not None:
            raise ImportFailed(f"the file is a {picture} picture: ComfyUI workflows come as JSON, or inside the PNG or "
                               "WebP pictures ComfyUI saves")
        parsed = _json(bytes(data), "the file")
    else:
        parsed = data
        check_depth(parsed, "the workflow")
    return from_json(parsed)


def _json(data: bytes, what: str) -> Any:
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except RecursionError:
        raise ImportFailed(f"{what} nests its JSON more than {MAX_DEPTH} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImportFailed(f"{what} is neither a PNG nor JSON ({exc})") from None
    check_depth(parsed, what)
    return parsed


def check_depth(value: Any, what: str) -> None:
    """ImportFailed when ``value`` nests lists and objects more than ``MAX_DEPTH`` levels deep (walked with a
    stack, so the check itself cannot recurse too deeply)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, Mapping | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ImportFailed(f"{what} nests its JSON more than {MAX_DEPTH} levels deep")
        children = item.values() if isinstance(item, Mapping) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list))


def _from_png(found: PngTexts, kind: str = "PNG") -> Workflow:
    texts = found.texts
    where = "text chunk" if kind == "PNG" else "EXIF entry"
    if "prompt" not in texts and "workflow" not in texts:
        raise ImportFailed(f"this {kind} carries no ComfyUI workflow (no 'prompt' or 'workflow' {where}; found: "
                           f"{found.found()})")
    ui = _json(texts["workflow"].encode(), f"the {kind}'s 'workflow' {where}") if "workflow" in texts else None
    if "prompt" not in texts:
        return from_json(ui)
    api = _json(texts["prompt"].encode(), f"the {kind}'s 'prompt' {where}")
    return _merged(api, ui, kind.lower())


_PICTURES = ((b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
             (b"MM\x00*", "TIFF"))


def _picture_kind(head: bytes) -> str | None:
    """The kind of picture a file's first bytes announce, for pictures that never carry a ComfyUI workflow."""
    return next((name for magic, name in _PICTURES if head.startswith(magic)), None)


def from_json(data: Any) -> Workflow:
    """A workflow from parsed JSON in either format."""
    if not isinstance(data, dict):
        raise ImportFailed("not a ComfyUI workflow: the JSON is not an object")
    if data.get("schema") == "nodeforge/graph@1":
        raise ImportFailed("this is already a nodeforge graph: open or run it as it is")
    if isinstance(data.get("nodes"), list):
        return from_ui(data)
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
        for raw in expand_subgraphs(ui)["nodes"]:
            if not isinstance(raw, dict):
                continue
            node = workflow.nodes.get(str(raw.get("id")))
            if node is not None:
                node.pos = position(raw.get("pos"))
                node.title = node.title or str(raw.get("title") or "")
        workflow.groups = groups_of(ui)
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


def _object(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {}
