"""Bypassed nodes (``"bypass": true`` in the document): taken out of the graph before it is compiled.

Each output of a bypassed node takes the node's first input of the same type, as it is bound (a link, a graph
input or a literal), so what consumed the output consumes that instead. The node neither runs nor appears in any
cache key: its consumers' keys are those of the graph without it. An output that is used but has no input of its
type to pass through is an issue naming the node, the output and who uses it.
"""

from __future__ import annotations

from typing import Any

from nodeforge.engine.document import LINK, GraphDocument, GraphOutputDecl, NodeDoc
from nodeforge.engine.errors import Issue
from nodeforge.engine.registry import Registry


def without_bypassed(document: GraphDocument, registry: Registry) -> tuple[GraphDocument, list[Issue]]:
    """The document the engine compiles: bypassed nodes of known types removed and their outputs passed through.
    A bypassed node with a used output it cannot pass through stays in (with an issue), so nothing else is
    reported about the inputs that use it."""
    bypassed = {node_id: node for node_id, node in document.nodes.items()
                if node.bypass and registry.find(node.type) is not None}
    if not bypassed:
        return document, []
    through = {node_id: _pass_through(node, registry) for node_id, node in bypassed.items()}
    issues = _stuck(document, registry, bypassed, through)
    for issue in issues:
        bypassed.pop(issue.node or "", None)

    def replace(raw: Any) -> Any:
        for _ in range(len(bypassed) + 1):  # a chain of bypassed nodes resolves one step at a time
            link = _link(raw)
            if link is None or link[0] not in bypassed:
                return raw
            raw = through[link[0]][link[1]]
        return raw

    nodes = {node_id: node.model_copy(update={"inputs": {
        name: [replace(item) for item in raw] if isinstance(raw, list) else replace(raw)
        for name, raw in node.inputs.items()}}) for node_id, node in document.nodes.items() if node_id not in bypassed}
    outputs: dict[str, GraphOutputDecl] = {}
    for name, decl in document.outputs.items():
        link = _link(replace({"from": decl.from_}))
        if link is None:
            issues.append(Issue(None, name, "bypass", f"graph output '{name}' passes through bypassed nodes to a "
                                "value that is not a node's output; connect it to a node that runs"))
            continue
        outputs[name] = decl.model_copy(update={"from_": f"{link[0]}.{link[1]}"})
    return document.model_copy(update={"nodes": nodes, "outputs": outputs}), issues


def _stuck(document: GraphDocument, registry: Registry, bypassed: dict[str, NodeDoc],
           through: dict[str, dict[str, Any]]) -> list[Issue]:
    """One issue per bypassed node with an output that something uses but no input of its type feeds."""
    users = [(raw, f"'{node_id}.{name}'") for node_id, node in document.nodes.items()
             for name, value in node.inputs.items() for raw in (value if isinstance(value, list) else [value])]
    users += [({"from": decl.from_}, f"graph output '{name}'") for name, decl in document.outputs.items()]
    issues: dict[str, Issue] = {}
    for raw, user in users:
        link = _link(raw)
        if link is None or link[0] not in bypassed or link[1] in through[link[0]] or link[0] in issues:
            continue
        node_id, output = link
        ports = registry.get(bypassed[node_id].type).outputs
        why = (f"no input of type {ports[output].type} passes through to its output '{output}'"
               if output in ports else f"it has no output '{output}'")
        issues[node_id] = Issue(node_id, None, "bypass", f"node '{node_id}' is bypassed, but {why} (used by {user})")
    return list(issues.values())


def _link(raw: Any) -> tuple[str, str] | None:
    match = LINK.match(raw["from"]) if isinstance(raw, dict) and isinstance(raw.get("from"), str) else None
    return (match.group(1), match.group(2)) if match else None


def _pass_through(node: NodeDoc, registry: Registry) -> dict[str, Any]:
    """For each output of a bypassed node: the binding of its first given input of the same type."""
    spec = registry.get(node.type)
    found: dict[str, Any] = {}
    for output, port in spec.outputs.items():
        for name, input_port in spec.inputs.items():
            if input_port.type == port.type and name in node.inputs:
                found[output] = node.inputs[name]
                break
    return found
