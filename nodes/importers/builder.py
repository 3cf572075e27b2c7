"""Writing the imported document: node ids, positions for the editor, and the graph inputs that make the result a
reusable pipeline (``--set model=... --set prompt=... --set seed=...``).

A graph input is declared by the first node that binds it, with that node's value as its default; a later node
whose value equals the default binds the same input (the refiner's copy of the prompt, the seed both passes share),
any other value stays a literal. Files are the exception: each different model file, ControlNet, upscaler, picture
or LoRA list gets its own input (``model``, ``model_2``..., ``controlnet``, ``loras``...), so swapping the base
model never swaps the refiner too, and every file a workflow names can be replaced with ``--set``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from nodeforge.engine.document import SCHEMA_ID
from nodeforge.nodes.importers.result import ImportFailed

INPUT_DESCRIPTIONS = {
    "model": "the model file of the workflow (a local path, an alias, or tiny/sd to try it offline)",
    "prompt": "what to draw", "negative_prompt": "what to avoid", "seed": "noise seed",
    "width": "pixels", "height": "pixels", "steps": "denoising steps",
    "vae": "the VAE file the workflow decodes with (empty: the model's own)",
    "controlnet": "the ControlNet model file of the workflow (tiny/controlnet to try it offline)",
    "upscaler": "the upscaling model file of the workflow (tiny/esrgan to try it offline)",
    "loras": 'the LoRAs of the workflow, [{"model": file, "weight": 1.0}] ([] for none)',
    "image": "a picture the workflow loads",
    "ip_adapter": "the IP-Adapter of the workflow (tiny/ip_adapter to try it offline)",
    "depth": "the depth estimator that stands in for the workflow's (tiny/depth to try it offline)",
}
UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
COLUMN, ROW = 320, 220
STEP = 40  # a node placed where another is moves this far right and down, until the place is free
MAX_DOCUMENT_TEXT = 32 * 1024 * 1024
"""Characters of text the written document may hold: a long prompt copied as a literal into thousands of nodes
would otherwise turn a small workflow into gigabytes of JSON."""


class Builder:
    """Collects nodes, graph inputs and outputs, warnings and positions; ``document()`` writes them out."""

    def __init__(self, name: str = "", description: str = "") -> None:
        self.name = name
        self.description = description
        self.nodes: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.positions: dict[str, list[float]] = {}
        self.output_positions: dict[str, list[float]] = {}
        self.groups: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._free: dict[tuple[int, int, int], int] = {}  # (diagonal, offset, step) -> a step further to try
        self._suffixes: dict[tuple[str, str], int] = {}  # (what, base name) -> the next suffix to try
        self._models: dict[str, str] = {}  # model file -> its graph input
        self._files: dict[tuple[str, str], str] = {}  # (kind, file as JSON) -> its graph input

    def warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warnings.append(message)

    def add(self, kind: str, origin: str, type_id: str, inputs: dict[str, Any],
            pos: tuple[float, float] | None = None) -> str:
        """A new node ``<kind>_<origin>`` (a suffix when taken); returns its id."""
        base = f"{kind}_{UNSAFE.sub('_', origin)}" if origin else kind
        node_id = self._unique(base, self.nodes, "node")
        self.nodes[node_id] = {"type": type_id, "inputs": inputs}
        if pos is not None:
            self.positions[node_id] = self._free_place(round(pos[0]), round(pos[1]))
        return node_id

    def _unique(self, base: str, taken: dict[str, Any], what: str) -> str:
        """``base``, or ``base_2``, ``base_3``... the first not taken (each base's count is kept, so n nodes of one
        name cost n tries, not n squared)."""
        if base not in taken:
            return base
        n = self._suffixes.get((what, base), 2)
        while f"{base}_{n}" in taken:
            n += 1
        self._suffixes[(what, base)] = n + 1
        return f"{base}_{n}"

    def _free_place(self, x: int, y: int) -> list[float]:
        """The first free place from (x, y) down its diagonal; the places taken on a diagonal are skipped through
        pointers that each lookup shortens (union-find), so many nodes at one place cost about linear time."""
        diagonal = (x - y, x % STEP)
        step = x // STEP
        trail = []
        while (key := (*diagonal, step)) in self._free:
            trail.append(key)
            step = self._free[key]
        self._free[(*diagonal, step)] = step + 1
        for key in trail:
            self._free[key] = step + 1
        free_x = diagonal[1] + step * STEP
        return [free_x, free_x - diagonal[0]]

    def bind(self, name: str, value: Any, kind: str) -> Any:
        """``{"input": name}`` when ``name`` is (or becomes) a graph input whose default is ``value``; otherwise the
        literal. ``kind`` is the input's type (text, int, float)."""
        declared = self.inputs.get(name)
        if declared is None:
            self.inputs[name] = {"type": kind, "default": value, "description": INPUT_DESCRIPTIONS.get(name, "")}
            return {"input": name}
        return {"input": name} if declared["default"] == value else value

    def bind_model(self, value: str) -> dict[str, str]:
        """The graph input holding model file ``value``: ``model``, or ``model_2``... for a further model."""
        name = self._models.get(value)
        if name is None:
            name = "model" if not self._models else f"model_{len(self._models) + 1}"
            self._models[value] = name
            self.inputs[name] = {"type": "text", "default": value, "description": INPUT_DESCRIPTIONS["model"]}
        return {"input": name}

    def bind_file(self, kind: str, value: Any, value_type: str = "text") -> dict[str, str]:
        """The graph input holding file ``value`` of ``kind`` (``controlnet``, ``upscaler``, ``image``, or ``loras``
        for a LoRA list): ``kind`` for the first, ``kind_2``... for each further different one."""
        key = (kind, json.dumps(value, sort_keys=True))
        name = self._files.get(key)
        if name is None:
            name = self._unique(kind, self.inputs, "input")
            self._files[key] = name
            self.inputs[name] = {"type": value_type, "default": value, "description": INPUT_DESCRIPTIONS.get(kind, "")}
        return {"input": name}

    def output(self, name: str, source: str, pos: tuple[float, float] | None = None) -> str:
        """A graph output ``name`` (a suffix when taken) from ``source`` (``node.port``)."""
        chosen = self._unique(UNSAFE.sub("_", name) or "image", self.outputs, "output")
        self.outputs[chosen] = {"from": source}
        if pos is not None:
            self.output_positions[chosen] = [round(pos[0]), round(pos[1])]
        return chosen

    def document(self) -> dict[str, Any]:
        """The graph document; ImportFailed when its text would exceed ``MAX_DOCUMENT_TEXT``."""
        self._place()
        ui: dict[str, Any] = {"positions": self.positions}
        if self.inputs:
            left = min((p[0] for p in self.positions.values()), default=0) - COLUMN
            top = min((p[1] for p in self.positions.values()), default=0)
            ui["inputs"] = {name: [left, top + i * 110] for i, name in enumerate(self.inputs)}
        if self.outputs:
            ui["outputs"] = self.output_positions
        if self.groups:
            ui["groups"] = self.groups
        document = {"schema": SCHEMA_ID, "name": self.name, "description": self.description, "inputs": self.inputs,
                    "nodes": self.nodes, "outputs": self.outputs, "ui": ui}
        size = _text_size(document)
        if size > MAX_DOCUMENT_TEXT:
            raise ImportFailed(f"the imported graph would hold {size:,} characters of text (its literals repeated "
                               f"in every node that uses them), over the limit of {MAX_DOCUMENT_TEXT:,}")
        return document

    def _place(self) -> None:
        """Positions for nodes that have none (the API format and A1111 carry no layout): layers by depth."""
        missing = [node_id for node_id in self.nodes if node_id not in self.positions]
        depth = self._depths(missing)
        rows: dict[int, int] = {}
        for node_id in missing:
            layer = depth[node_id]
            row = rows.get(layer, 0)
            rows[layer] = row + 1
            self.positions[node_id] = [40 + layer * COLUMN, 40 + row * ROW]
        for name, decl in self.outputs.items():
            if name not in self.output_positions:
                source = self.positions.get(decl["from"].split(".", 1)[0], [40, 40])
                self.output_positions[name] = [source[0] + COLUMN, source[1]]

    def _depths(self, starts: list[str]) -> dict[str, int]:
        """Each node's layer: one more than its deepest upstream node's (0 without one), found depth first with an
        explicit stack so a chain of thousands of nodes cannot exhaust Python's recursion; a link back to a node on
        the current path is ignored."""
        depth: dict[str, int] = {}
        for start in starts:
            if start in depth:
                continue
            path: set[str] = {start}
            stack: list[tuple[str, list[str], Iterator[str]]] = []
            ups = self._ups(start)
            stack.append((start, ups, iter(ups)))
            while stack:
                node_id, ups, pending = stack[-1]
                child = next((u for u in pending if u not in depth and u not in path), None)
                if child is not None:
                    path.add(child)
                    child_ups = self._ups(child)
                    stack.append((child, child_ups, iter(child_ups)))
                    continue
                stack.pop()
                path.discard(node_id)
                depth[node_id] = 1 + max((depth[u] for u in ups if u in depth), default=-1)
        return depth

    def _ups(self, node_id: str) -> list[str]:
        return [u for u in _upstream(self.nodes[node_id]["inputs"]) if u in self.nodes]


def _upstream(inputs: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for value in inputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("from"), str):
                found.append(item["from"].split(".", 1)[0])
    return found


def _text_size(document: dict[str, Any]) -> int:
    """Characters of text in the document (strings counted each time they appear, as JSON writes them)."""
    size = 0
    stack: list[Any] = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            size += len(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return size
