"""Saved graphs inside a graph: ``graph.call`` uses one as a node (its declared inputs and outputs become the
node's ports); ``graph.sweep`` runs one over several values of its inputs and returns every output as a list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field

from nodeforge.engine.compiler import CompiledGraph, GraphEnv, compile_graph
from nodeforge.engine.context import BoundValue, NodeContext
from nodeforge.engine.declarations import SavedGraphInput
from nodeforge.engine.document import GraphDocument
from nodeforge.engine.errors import EngineError, GraphRecursionError, GraphValidationError, NodeError
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.ports import NodePorts, make_port
from nodeforge.engine.saved_graphs import document_digest
from nodeforge.engine.sweep import (
    MODES,
    axis_problems,
    cell_name,
    expand_sweep,
    node_states,
    sweep_cells,
    sweep_table,
)
from nodeforge.engine.types import list_item
from nodeforge.engine.values import Audio, Image, Video


def load_called(name: str, env: GraphEnv) -> tuple[GraphDocument, CompiledGraph]:
    """A saved graph and its compiled form, for a node that runs it. A call chain that comes back to a graph it is
    inside is raised as that chain, from however deep it is found, so the outermost caller names it on its
    ``graph`` input."""
    document = env.library.load(name)
    try:
        compiled = compile_graph(document, env.entering(name))
    except GraphRecursionError as exc:
        raise GraphRecursionError(str(exc), input="graph") from None
    except EngineError as exc:
        issues = exc.issues if isinstance(exc, GraphValidationError) else []
        loop = next((issue.message for issue in issues if issue.code == "recursion"), None)
        if loop is not None:
            raise GraphRecursionError(loop, input="graph") from None
        raise EngineError(f"saved graph '{name}' is invalid: {exc}") from None
    return document, compiled


def saved_graph(name: str, ctx: NodeContext) -> GraphDocument:
    """The saved graph a node runs; NodeError on its ``graph`` input when there is none of that name."""
    try:
        return ctx.env.library.load(name)
    except EngineError as exc:
        raise NodeError(str(exc), input="graph") from None


class RunsSavedGraph(Node):
    """What the nodes that run a saved graph share: the graph's content is part of their cache key, so editing
    the saved graph recomputes them."""

    def fingerprint(self, literals: Mapping[str, Any], env: GraphEnv) -> str | None:
        name = literals.get("graph")
        return document_digest(env.library.load(name)) if isinstance(name, str) else None


class CallGraph(RunsSavedGraph):
    """Run a saved graph as one node. Its inner nodes share the cache, so unchanged parts are not recomputed."""

    type_id = "graph.call"
    version = "1.0.0"
    extra_inputs = "json"

    class Inputs(NodeInputs):
        model_config = ConfigDict(extra="allow", frozen=True)
        graph: str = SavedGraphInput(description="Name of a saved graph")

    class Outputs(NodeOutputs):
        model_config = ConfigDict(extra="allow")

    def ports(self, literals: Mapping[str, Any], env: GraphEnv) -> NodePorts | None:
        """The called graph's inputs and outputs."""
        name = literals.get("graph")
        if not isinstance(name, str):
            return None
        document, compiled = load_called(name, env)
        inputs = {"graph": make_port("graph", "text", description="Name of a saved graph")}
        for input_name, decl in document.inputs.items():
            inputs[input_name] = make_port(input_name, decl.type, required=decl.default is None,
                                           default=decl.default, description=decl.description)
        outputs = {output_name: make_port(output_name, compiled.output_port(link).type)
                   for output_name, link in compiled.outputs.items()}
        return NodePorts(inputs, outputs)

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        document = saved_graph(inputs.graph, ctx)
        given = {name: BoundValue(value, ctx.input_material(name))
                 for name, value in (inputs.model_extra or {}).items()}
        return self.Outputs(**ctx.call_graph(document, given))


class SweepGraph(RunsSavedGraph):
    """Run a saved graph over several values of its inputs (``axes``: ``{"seed": [1, 2], "model": [...]}``) as a
    cartesian ``product``, a ``zip``, or ``rows`` (``axes`` a list of input objects); the graph's other inputs pass
    through. Every cell is an ordinary cached run of the graph: nodes that read no swept input run once for all
    cells, and cells run in parallel on every device. Each graph output comes back as a list in cell order, and
    ``cells`` says per cell its inputs, outputs, seconds, devices and whether it came from the cache."""

    type_id = "graph.sweep"
    version = "1.0.0"
    extra_inputs = "json"

    class Inputs(NodeInputs):
        model_config = ConfigDict(extra="allow", frozen=True)
        graph: str = SavedGraphInput(description="Name of a saved graph")
        axes: Any = Field(description='The swept inputs: {"input": [values, ...]}, or a list of input objects in '
                                      "rows mode")
        mode: str = Field("product", description="product (every combination), zip (the i-th values together) or "
                                                 "rows", json_schema_extra={"enum": list(MODES)})

    class Outputs(NodeOutputs):
        model_config = ConfigDict(extra="allow")

    def ports(self, literals: Mapping[str, Any], env: GraphEnv) -> NodePorts | None:
        """The graph's inputs (all optional: swept or passed through) and its outputs as lists, plus ``cells``;
        axes that are not inputs of the graph are an issue on ``axes``."""
        name = literals.get("graph")
        if not isinstance(name, str):
            return None
        document, compiled = load_called(name, env)
        if "axes" in literals:
            problems = axis_problems(document, sweep_cells(literals["axes"], str(literals.get("mode", "product"))))
            if problems:
                raise NodeError("; ".join(problems), input="axes")
        inputs = {"graph": make_port("graph", "text", description="Name of a saved graph"),
                  "axes": make_port("axes", "json", description="The swept inputs"),
                  "mode": make_port("mode", "text", required=False, default="product", description="product, zip "
                                                                                                   "or rows")}
        for input_name, decl in document.inputs.items():
            inputs[input_name] = make_port(input_name, decl.type, required=False, default=decl.default,
                                           description=decl.description)
        outputs = {"cells": make_port("cells", "json", description="Per cell: inputs, outputs, seconds, devices, "
                                                                   "cached")}
        for output_name, link in compiled.outputs.items():
            item = compiled.output_port(link).type
            outputs[output_name] = make_port(output_name, item if list_item(item) else f"list[{item}]")
        return NodePorts(inputs, outputs)

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        document = saved_graph(inputs.graph, ctx)
        sweep = expand_sweep(document, sweep_cells(inputs.axes, inputs.mode))
        given: dict[str, Any] = {name: BoundValue(value, ctx.input_material(name))
                                 for name, value in (inputs.model_extra or {}).items()
                                 if name in sweep.document.inputs}
        nested = ctx.run_graph(sweep.document, {**given, **sweep.inputs})
        lists = {name: [nested.outputs[cell_name(i, name)] for i in range(len(sweep.cells))]
                 for name in sweep.outputs}
        summaries = {name: _summary(value) for name, value in nested.outputs.items()}
        table = sweep_table(sweep.document.ui["sweep"], node_states(nested.record), summaries)
        return self.Outputs(**{"cells": table, **lists})


def _summary(value: Any) -> Any:
    """A cell's output in the ``cells`` table: text and numbers as they are, media by kind and size."""
    if isinstance(value, Image | Audio | Video):
        return {"media_type": type(value).__name__.lower(), "nbytes": value.nbytes}
    if isinstance(value, list):
        return [_summary(item) for item in value]
    return value
