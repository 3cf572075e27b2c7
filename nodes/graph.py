"""``graph.call``: a saved graph used as one node; its declared inputs and outputs become the node's ports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field

from nodeforge.engine.context import BoundValue, NodeContext
from nodeforge.engine.errors import EngineError, GraphRecursionError, GraphValidationError, NodeError
from nodeforge.engine.graph import GraphEnv, compile_graph
from nodeforge.engine.library import document_digest
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.ports import NodePorts, make_port


class CallGraph(Node):
    """Run a saved graph as one node. Its inner nodes share the cache, so unchanged parts are not recomputed."""

    type_id = "graph.call"
    version = "1.0.0"
    extra_inputs = "json"

    class Inputs(NodeInputs):
        model_config = ConfigDict(extra="allow", frozen=True)
        graph: str = Field(description="Name of a saved graph")

    class Outputs(NodeOutputs):
        model_config = ConfigDict(extra="allow")

    def ports(self, literals: Mapping[str, Any], env: GraphEnv) -> NodePorts | None:
        """The called graph's inputs and outputs. A call chain that comes back to a graph it is inside is raised
        as that chain, from however deep it is found, so the outermost caller names it on its ``graph`` input."""
        name = literals.get("graph")
        if not isinstance(name, str):
            return None
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
        inputs = {"graph": make_port("graph", "text", description="Name of a saved graph")}
        for input_name, decl in document.inputs.items():
            inputs[input_name] = make_port(input_name, decl.type, required=decl.default is None,
                                           default=decl.default, description=decl.description)
        outputs = {output_name: make_port(output_name, compiled.output_port(link).type)
                   for output_name, link in compiled.outputs.items()}
        return NodePorts(inputs, outputs)

    def fingerprint(self, literals: Mapping[str, Any], env: GraphEnv) -> str | None:
        name = literals.get("graph")
        return document_digest(env.library.load(name)) if isinstance(name, str) else None

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        try:
            document = ctx.env.library.load(inputs.graph)
        except EngineError as exc:
            raise NodeError(str(exc), input="graph") from None
        given = {name: BoundValue(value, ctx.input_material(name))
                 for name, value in (inputs.model_extra or {}).items()}
        return self.Outputs(**ctx.call_graph(document, given))
