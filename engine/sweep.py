"""Sweeps: one graph run over several values of its inputs, as one combined graph.

A sweep is a list of cells, each the values of some graph inputs (``sweep_cells``: a cartesian product of axes, a
zip of them, or explicit rows). ``expand_sweep`` writes the combined graph: a node that depends on no swept input
appears once and every cell uses it; every other node is copied per cell as ``c<i>__<id>``, reading that cell's
values from graph inputs ``c<i>__<input>``. The combined graph runs like any graph: its nodes run in parallel on
every device, a copy keys exactly as the same node in a plain run with that value (graph inputs count as literals),
so shared work runs once, a re-run is cached, and a batch interrupted halfway resumes from the cache.
``sweep_table`` reads each cell's outputs, seconds, devices and cache state back from the run record.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nodeforge.engine.document import GraphDocument, parse_document
from nodeforge.engine.errors import EngineError, NodeError
from nodeforge.engine.keys import canonical
from nodeforge.engine.record import RunRecord

SweepMode = Literal["product", "zip", "rows"]
MODES: tuple[SweepMode, ...] = ("product", "zip", "rows")
MAX_CELLS = 4096
COUNT_CEILING = 10**18
"""Where counting cells stops: any count this large is refused the same way."""
MAX_COPIES = 16_384
"""Cells times the nodes that read a swept input: what the combined graph and its ``ui.sweep`` hold per cell (a
copy, or which cell's copy the cell uses), so the cap on cells also bounds a small graph's sweep in memory."""


def cell_name(index: int, name: str) -> str:
    """The id of a node, graph input or output copied into cell ``index``."""
    return f"c{index}__{name}"


def sweep_cells(axes: Any, mode: str = "product") -> list[dict[str, Any]]:
    """The cells of a sweep, in order: ``product`` (the first axis varies slowest, so with two axes the first
    gives the rows of a sheet), ``zip`` (axes of one length, taken together) or ``rows`` (``axes`` is then a list of
    input objects). NodeError on ``axes`` or ``mode`` when they do not describe a sweep, or describe more than
    ``MAX_CELLS`` cells: counted from the axes' lengths before a single cell is built, so a few bytes of axes
    that multiply to a billion cells cost nothing."""
    count_cells(axes, mode)
    if mode == "rows":
        return [dict(row) for row in axes]
    names, lists = list(axes), list(axes.values())
    combined = zip(*lists, strict=True) if mode == "zip" else itertools.product(*lists)
    return [dict(zip(names, values, strict=True)) for values in combined]


def count_cells(axes: Any, mode: str = "product") -> int:
    """How many cells ``sweep_cells`` would build, by arithmetic on the axes' lengths; NodeError (as there) when
    the axes do not describe a sweep or the count is over ``MAX_CELLS``."""
    if mode not in MODES:
        raise NodeError(f"mode is one of {', '.join(MODES)}, not {mode!r}", input="mode")
    if mode == "rows":
        if not isinstance(axes, list) or not axes or not all(isinstance(row, dict) and row for row in axes):
            raise NodeError("rows mode takes a non-empty list of input objects, e.g. [{\"seed\": 1}, {\"seed\": 2}]",
                            input="axes")
        return _within_cap(len(axes), f"{len(axes)} rows")
    if not isinstance(axes, dict) or not axes:
        raise NodeError('axes is an object of input names and value lists, e.g. {"seed": [1, 2, 3]}', input="axes")
    for name, values in axes.items():
        if not isinstance(values, list) or not values:
            raise NodeError(f"axes.{name} must be a non-empty list of values", input="axes")
    lengths = _clipped(", ".join(f"{name}: {len(values)}" for name, values in axes.items()))
    if mode == "zip":
        if len({len(values) for values in axes.values()}) > 1:
            raise NodeError(f"zip takes axes of one length ({lengths})", input="axes")
        return _within_cap(len(next(iter(axes.values()))), f"axes of {lengths} values, zipped")
    count = 1
    for values in axes.values():
        count = min(count * len(values), COUNT_CEILING)  # saturating: a thousand axes never make a huge integer
    return _within_cap(count, f"axes of {lengths} values")


def _within_cap(count: int, what: str) -> int:
    if count > MAX_CELLS:
        many = f"{count:,}" if count < COUNT_CEILING else f"more than {COUNT_CEILING:,}"
        raise NodeError(f"the sweep has {many} cells ({what}); at most {MAX_CELLS} run in one sweep", input="axes")
    return count


def _clipped(text: str, most: int = 200) -> str:
    return text if len(text) <= most else text[:most - 3] + "..."


def axis_problems(document: GraphDocument, cells: Iterable[Mapping[str, Any]]) -> list[str]:
    """Swept names that are not inputs of the graph (each once, in order)."""
    declared = document.inputs
    unknown = dict.fromkeys(name for cell in cells for name in cell if name not in declared)
    accepted = ", ".join(declared) or "none"
    return [f"'{name}' is not an input of graph '{document.name or 'graph'}' (its inputs: {accepted})"
            for name in unknown]


@dataclass(frozen=True)
class Sweep:
    """A combined graph and how to read it back: the cells' values (``inputs`` binds them), the original graph's
    output names, and per cell the node ids that are its own copies. The document's ``ui.sweep`` holds the same
    (cells, outputs, own), so a stored run can be read back as a table."""

    document: GraphDocument
    cells: list[dict[str, Any]]
    outputs: list[str]
    own_nodes: list[list[str]]
    inputs: dict[str, Any]


def expand_sweep(document: GraphDocument, cells: list[dict[str, Any]]) -> Sweep:
    """The combined graph of ``document`` over ``cells`` (see the module docstring). A node is copied once per
    distinct combination of the swept values it reads (directly or upstream), so in a 3x2 sweep a node that reads
    only the first axis runs three times, not six. Raises NodeError on ``axes`` when a cell names something that is
    not an input of the graph, or when the combined graph would hold more than ``MAX_COPIES`` node copies (checked
    before any is made)."""
    problems = axis_problems(document, cells)
    if problems:
        raise NodeError("; ".join(problems), input="axes")
    source = document.to_json()
    swept = set().union(*(cell.keys() for cell in cells))
    reads = _swept_reads(source["nodes"], swept)
    if len(cells) * len(reads) > MAX_COPIES:
        raise NodeError(f"the sweep would copy {len(cells) * len(reads):,} nodes ({len(cells)} cells x "
                        f"{len(reads)} nodes that read a swept input); at most {MAX_COPIES:,} in one sweep: sweep "
                        "fewer values, or split the graph", input="axes")
    nodes: dict[str, Any] = {node_id: node for node_id, node in source["nodes"].items() if node_id not in reads}
    declared = {name: decl for name, decl in source["inputs"].items()
                if name not in swept or any(name not in cell for cell in cells)}
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    own: list[list[str]] = [[] for _ in cells]
    uses: list[list[str]] = []
    first: dict[tuple[str, str], int] = {}  # (node, the swept values it reads) -> the cell that has its copy
    for index, cell in enumerate(cells):
        for name, value in cell.items():
            declared[cell_name(index, name)] = {**source["inputs"][name], "default": None}
            inputs[cell_name(index, name)] = value
        copies = {}
        for node_id, names in reads.items():
            signature = (node_id, canonical([[name, cell.get(name, None), name in cell] for name in sorted(names)]))
            copies[node_id] = first.setdefault(signature, index)
            if copies[node_id] == index:
                node = source["nodes"][node_id]
                nodes[cell_name(index, node_id)] = {**node, "inputs": {
                    name: _rebind(value, index, cell, copies) for name, value in node["inputs"].items()}}
                own[index].append(cell_name(index, node_id))
        uses.append([cell_name(copy, node_id) for node_id, copy in copies.items()])
        for name, decl in source["outputs"].items():
            outputs[cell_name(index, name)] = {**decl, "from": _relink(decl["from"], copies)}
    combined = parse_document({
        "name": f"{document.name or 'graph'} (sweep)", "description": document.description, "inputs": declared,
        "nodes": nodes, "outputs": outputs,
        "ui": {"sweep": {"graph": document.name, "cells": cells, "outputs": list(source["outputs"]), "own": own,
                         "uses": uses}}})
    return Sweep(combined, cells, list(source["outputs"]), own, inputs)


def read_meta(raw: Any) -> dict[str, Any]:
    """A combined graph's ``ui.sweep`` checked before ``sweep_table`` reads it: ``ui`` is free-form, so a stored
    document may carry any JSON there. EngineError saying which part does not have the shape ``expand_sweep``
    writes."""
    if not isinstance(raw, dict):
        raise EngineError("ui.sweep is not an object")
    cells, outputs = raw.get("cells"), raw.get("outputs")
    if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
        raise EngineError("ui.sweep.cells is not a list of input objects")
    if len(cells) > MAX_CELLS:
        raise EngineError(f"ui.sweep.cells has {len(cells)} cells; a sweep has at most {MAX_CELLS}")
    if not _strings(outputs):
        raise EngineError("ui.sweep.outputs is not a list of output names")
    for part in ("own", "uses"):
        ids = raw.get(part)
        if not isinstance(ids, list) or len(ids) != len(cells) or not all(_strings(item) for item in ids):
            raise EngineError(f"ui.sweep.{part} is not a list of node ids per cell ({len(cells)} cells)")
    graph = raw.get("graph")
    return {"graph": graph if isinstance(graph, str) else None, "cells": cells, "outputs": outputs,
            "own": raw["own"], "uses": raw["uses"]}


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def sweep_table(meta: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]],
                outputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per cell of a combined graph (``meta`` is its ``ui.sweep``): its swept values, its outputs (from
    ``outputs``, keyed by the combined graph's output names: the record's files, artifact URLs, or JSON summaries),
    the seconds of its own nodes (work another cell shares is counted once, in the first cell that needs it; nodes
    that read no swept input in none), and the devices, cache state and status of every copied node it uses
    (``nodes``: each node's status, device, seconds)."""
    table = []
    for index, cell in enumerate(meta["cells"]):
        own = [nodes[node_id] for node_id in meta["own"][index] if node_id in nodes]
        used = [nodes[node_id] for node_id in meta["uses"][index] if node_id in nodes]
        table.append({
            "index": index, "inputs": cell,
            "outputs": {name: outputs.get(cell_name(index, name)) for name in meta["outputs"]},
            "seconds": round(sum(node.get("seconds") or 0.0 for node in own), 6),
            "devices": sorted({node["device"] for node in used if node.get("device")}),
            "cached": bool(used) and all(node["status"] == "cached" for node in used),
            "status": _cell_status(used),
        })
    return table


def node_states(record: RunRecord) -> dict[str, dict[str, Any]]:
    """A run record's nodes as ``sweep_table`` reads them."""
    return {node_id: {"status": node.status, "device": node.device, "seconds": node.seconds}
            for node_id, node in record.nodes.items()}


def _cell_status(records: Sequence[Mapping[str, Any]]) -> str:
    statuses = {node["status"] for node in records}
    for status in ("failed", "cancelled", "skipped"):
        if status in statuses:
            return status
    return "succeeded"


def _swept_reads(nodes: Mapping[str, Any], swept: set[str]) -> dict[str, set[str]]:
    """For every node that reads a swept input, directly or through links, the swept inputs it reads (in
    document order; nodes absent read none and are shared by every cell)."""
    reads: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for node_id, node in nodes.items():
            found: set[str] = set()
            for value in node["inputs"].values():
                _collect(value, swept, reads, found)
            if found and found != reads.get(node_id):
                reads[node_id] = found
                changed = True
    return {node_id: reads[node_id] for node_id in nodes if node_id in reads}


def _collect(value: Any, swept: set[str], reads: Mapping[str, set[str]], found: set[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _collect(item, swept, reads, found)
    elif isinstance(value, dict) and len(value) == 1:
        if "input" in value and value["input"] in swept:
            found.add(value["input"])
        elif "from" in value and isinstance(value["from"], str):
            found.update(reads.get(value["from"].split(".", 1)[0], ()))


def _rebind(value: Any, index: int, cell: Mapping[str, Any], copies: Mapping[str, int]) -> Any:
    """A node input as the copy in cell ``index`` reads it: the cell's graph inputs, the right copies' outputs."""
    if isinstance(value, list):
        return [_rebind(item, index, cell, copies) for item in value]
    if isinstance(value, dict) and len(value) == 1:
        if "input" in value and value["input"] in cell:
            return {"input": cell_name(index, value["input"])}
        if "from" in value and isinstance(value["from"], str):
            return {"from": _relink(value["from"], copies)}
    return value


def _relink(link: str, copies: Mapping[str, int]) -> str:
    """A link to a node's output, pointed at the copy (of the cell ``copies`` names) when the node is copied."""
    node, output = link.split(".", 1)
    return f"{cell_name(copies[node], node)}.{output}" if node in copies else link
