"""Writing the imported document: node ids, positions for the editor, and the graph inputs that make the result a
reusable pipeline (``--set model=... --set prompt=... --set seed=...``).

A graph input is declared by the first node that binds it, with that node's value as its default; a later node
whose value equals the default binds the same input (the refiner's copy of the prompt, the seed both passes share),
any other value stays a literal. Models are the exception: each different model file gets its own input
(``model``, ``model_2``...), so swapping the base model never swaps the refiner too.
"""

from __future__ import annotations

import re
from typing import Any

from nodeforge.engine.document import SCHEMA_ID

INPUT_DESCRIPTIONS = {
    "model": "the model file of the workflow (a local path, an alias, or tiny/sd to try it offline)",
    "prompt": "what to draw", "negative_prompt": "what to avoid", "seed": "noise seed",
    "width": "pixels", "height": "pixels", "steps": "denoising steps",
}
UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
COLUMN, ROW = 320, 220


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
        self._taken_positions: set[tuple[int, int]] = set()

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def add(self, kind: str, origin: str, type_id: str, inputs: dict[str, Any],
            pos: tuple[float, float] | None = None) -> str:
        """A new node ``<kind>_<origin>`` (a suffix when taken); returns its id."""
        base = f"{kind}_{UNSAFE.sub('_', origin)}" if origin else kind
        node_id, n = base, 2
        while node_id in self.nodes:
            node_id, n = f"{base}_{n}", n + 1
        self.nodes[node_id] = {"type": type_id, "inputs": inputs}
        if pos is not None:
            x, y = round(pos[0]), round(pos[1])
            while (x, y) in self._taken_positions:
                x, y = x + 40, y + 40
            self._taken_positions.add((x, y))
            self.positions[node_id] = [x, y]
        return node_id

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
        for name, declared in self.inputs.items():
            if re.fullmatch(r"model(_\d+)?", name) and declared["default"] == value:
                return {"input": name}
        count = sum(1 for name in self.inputs if re.fullmatch(r"model(_\d+)?", name))
        name = "model" if count == 0 else f"model_{count + 1}"
        self.inputs[name] = {"type": "text", "default": value, "description": INPUT_DESCRIPTIONS["model"]}
        return {"input": name}

    def output(self, name: str, source: str, pos: tuple[float, float] | None = None) -> str:
        """A graph output ``name`` (a suffix when taken) from ``source`` (``node.port``)."""
        base = UNSAFE.sub("_", name) or "image"
        chosen, n = base, 2
        while chosen in self.outputs:
            chosen, n = f"{base}_{n}", n + 1
        self.outputs[chosen] = {"from": source}
        if pos is not None:
            self.output_positions[chosen] = [round(pos[0]), round(pos[1])]
        return chosen

    def document(self) -> dict[str, Any]:
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
        return {"schema": SCHEMA_ID, "name": self.name, "description": self.description, "inputs": self.inputs,
                "nodes": self.nodes, "outputs": self.outputs, "ui": ui}

    def _place(self) -> None:
        """Positions for nodes that have none (the API format and A1111 carry no layout): layers by depth."""
        missing = [node_id for node_id in self.nodes if node_id not in self.positions]
        depth: dict[str, int] = {}

        def depth_of(node_id: str, trail: frozenset[str] = frozenset()) -> int:
            if node_id not in depth:
                ups = [u for u in _upstream(self.nodes[node_id]["inputs"]) if u in self.nodes and u not in trail]
                depth[node_id] = 1 + max((depth_of(u, trail | {node_id}) for u in ups), default=-1)
            return depth[node_id]

        rows: dict[int, int] = {}
        for node_id in missing:
            layer = depth_of(node_id)
            row = rows.get(layer, 0)
            rows[layer] = row + 1
            self.positions[node_id] = [40 + layer * COLUMN, 40 + row * ROW]
        for name, decl in self.outputs.items():
            if name not in self.output_positions:
                source = self.positions.get(decl["from"].split(".", 1)[0], [40, 40])
                self.output_positions[name] = [source[0] + COLUMN, source[1]]


def _upstream(inputs: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for value in inputs.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("from"), str):
                found.append(item["from"].split(".", 1)[0])
    return found
