"""Validation and compilation of a graph document against a registry.

``compile_graph`` collects every issue (it never stops at the first) and, when there are none, returns a
``CompiledGraph``: each node with its spec, its ports and typed bindings, plus a topological order. Everything is
iterative, so a 10,000-node chain validates without recursion limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from nodeforge.engine.bypass import without_bypassed
from nodeforge.engine.declarations import RANDOM_SEEDS, SeedRole
from nodeforge.engine.declared_checks import default_path_problems, model_problems, path_problems
from nodeforge.engine.document import (
    BadBinding,
    Binding,
    GraphDocument,
    InputBinding,
    LinkBinding,
    ListBinding,
    LiteralBinding,
    parse_binding,
    parse_link,
)
from nodeforge.engine.errors import EngineError, GraphRecursionError, GraphValidationError, Issue
from nodeforge.engine.files import FileAccess
from nodeforge.engine.node import NodeSpec, Upstream, version_problem
from nodeforge.engine.ports import NodePorts, Port, make_port
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.types import LINK_ONLY_TYPES, MEDIA_TYPES, is_assignable, list_item

_SCALARS = frozenset({str, int, float, bool, type(None)})


def _first(item: tuple[str, Any]) -> str:
    return item[0]


_LITERALS: dict[tuple[type, Any], LiteralBinding] = {}


def _literal(value: Any) -> LiteralBinding:
    """The binding of a text, number, boolean or None literal; bindings are immutable, so the same literal in many
    nodes (or many compiles of one graph) shares one (short texts only, a few thousand at most)."""
    if type(value) is str and len(value) > 200:
        return LiteralBinding(value)
    key = (type(value), value)
    binding = _LITERALS.get(key)
    if binding is None:
        if len(_LITERALS) >= 4096:
            _LITERALS.clear()
        binding = _LITERALS[key] = LiteralBinding(value)
    return binding


@dataclass(frozen=True)
class GraphEnv:
    """What validation may consult besides the document: node types, saved graphs, and the graph.call stack."""

    registry: Registry
    library: GraphLibrary = field(default_factory=lambda: GraphLibrary([]))
    call_stack: tuple[str, ...] = ()
    files: FileAccess | None = None
    """The path policy literal paths are checked against at validation (None: not checked before use)."""

    def entering(self, graph_name: str) -> GraphEnv:
        if graph_name in self.call_stack:
            chain = " -> ".join((*self.call_stack, graph_name))
            raise GraphRecursionError(f"graph.call recursion: {chain}")
        return GraphEnv(self.registry, self.library, (*self.call_stack, graph_name), self.files)


@dataclass(slots=True)
class CompiledNode:
    """A validated node. ``literals`` holds its literal inputs (a random seed excepted, as it is drawn per run);
    ``dynamic`` lists the inputs whose key material is known only per run (links, graph inputs). Validation
    computes no key: ``key_prefix`` (the key material of the literals) is filled in by the prepare stage the first
    time the node is prepared (``engine.prepare``), so a compiled graph that runs many times computes it once."""

    id: str
    spec: NodeSpec
    ports: NodePorts
    bindings: dict[str, Binding]
    upstream: tuple[str, ...]
    literals: dict[str, Any] = field(default_factory=dict)
    dynamic: tuple[tuple[str, Binding], ...] = ()
    key_prefix: str | None = None


@dataclass(slots=True)
class CompiledGraph:
    document: GraphDocument
    nodes: dict[str, CompiledNode]
    order: list[str]
    outputs: dict[str, LinkBinding]

    @property
    def name(self) -> str:
        return self.document.name

    def output_port(self, link: LinkBinding) -> Port:
        return self.nodes[link.node].ports.outputs[link.output]


def validate(document: GraphDocument, env: GraphEnv) -> list[Issue]:
    """Every issue of the document; empty when it can run."""
    return _Compiler(document, env).run()[0]


def compile_graph(document: GraphDocument, env: GraphEnv) -> CompiledGraph:
    """The runnable form of a document; raises GraphValidationError with every issue."""
    issues, compiled = _Compiler(document, env).run()
    if issues or compiled is None:
        raise GraphValidationError(issues)
    return compiled


def _pydantic_reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


class _Compiler:
    def __init__(self, document: GraphDocument, env: GraphEnv) -> None:
        self.source = document  # what the run records: bypassed nodes included
        self.document, self.issues = without_bypassed(document, env.registry)
        self.env = env
        self.models = env.registry.model_source
        self.nodes: dict[str, CompiledNode] = {}
        self.links: list[tuple[str, Port, LinkBinding, bool]] = []  # (node, port, link, in a list) to check

    def issue(self, node: str | None, input: str | None, code: str, message: str) -> None:
        self.issues.append(Issue(node, input, code, message))

    def run(self) -> tuple[list[Issue], CompiledGraph | None]:
        self._check_graph_inputs()
        for node_id, node_doc in self.document.nodes.items():
            self._compile_node(node_id, node_doc.type, node_doc.version, node_doc.inputs)
        for node_id, port, link, in_list in self.links:
            self._check_link(node_id, port, link, in_list=in_list)
        self._check_upstream()
        order = self._order()
        outputs = self._outputs()
        if self.issues or order is None:
            return self.issues, None
        return [], CompiledGraph(self.source, self.nodes, order, outputs)

    def _check_graph_inputs(self) -> None:
        for name, message in default_path_problems(self.document, self.env.files) if self.env.files else ():
            self.issue(None, name, "forbidden_path", message)
        for name, decl in self.document.inputs.items():
            if decl.default is None or decl.type in MEDIA_TYPES:
                continue
            try:
                make_port(name, decl.type).validate_literal(decl.default)
            except ValidationError as exc:
                self.issue(None, name, "invalid_default",
                           f"default of graph input '{name}' is not a valid {decl.type}: {_pydantic_reason(exc)}")

    def _compile_node(self, node_id: str, type_id: str, version: str | None, raw_inputs: Mapping[str, Any]) -> None:
        spec = self.env.registry.find(type_id)
        if spec is None:
            self.issue(node_id, None, "unknown_type", f"unknown node type '{type_id}'")
            return
        problem = version_problem(spec, version) if version is not None else None
        if problem:
            self.issue(node_id, None, "version", problem)
        bindings: dict[str, Binding] = {}
        literals: dict[str, Any] = {}
        for name, raw in raw_inputs.items():
            if type(raw) in _SCALARS:  # most inputs: a literal that cannot be mistaken for a link
                bindings[name] = _literal(raw)
                literals[name] = raw
                continue
            try:
                binding = bindings[name] = parse_binding(raw)
            except BadBinding as exc:
                self.issue(node_id, name, "bad_link", str(exc))
                continue
            if isinstance(binding, LiteralBinding):
                literals[name] = binding.value
        try:
            ports = spec.static_ports if spec.plain_ports else spec.ports_for(literals, bindings.keys(), self.env)
        except GraphRecursionError as exc:
            self.issue(node_id, exc.input, "recursion", str(exc))
            return
        except EngineError as exc:
            self.issue(node_id, getattr(exc, "input", None), "bad_ports", str(exc))
            return
        inputs = ports.inputs
        upstream: dict[str, None] = {}
        dynamic: list[tuple[str, Binding]] = []
        for name, binding in bindings.items():
            port = inputs.get(name)
            if port is None:
                accepted = ", ".join(inputs) or "none"
                self.issue(node_id, name, "unknown_input", f"{type_id} has no input '{name}' (inputs: {accepted})")
                upstream.update(dict.fromkeys(link.node for link in _links((binding,))))
                continue
            if isinstance(binding, LiteralBinding):
                self._check_literal(node_id, port, binding.value)
                continue
            dynamic.append((name, binding))
            if isinstance(binding, LinkBinding):
                upstream[binding.node] = None
                self.links.append((node_id, port, binding, False))
                continue
            self._check_binding(node_id, port, binding)
            if isinstance(binding, ListBinding):
                for item in binding.items:
                    if isinstance(item, LinkBinding):
                        upstream[item.node] = None
                        self.links.append((node_id, port, item, True))
        required = spec.required_inputs if ports is spec.static_ports or not spec.dynamic else \
            tuple(name for name, port in inputs.items() if port.required)
        for name in required:
            if name not in bindings:
                self.issue(node_id, name, "missing_input",
                           f"required input '{name}' ({inputs[name].type}) is not given")
        for declared, message in model_problems(spec, literals, self.models):
            self.issue(node_id, declared, "invalid_input", message)
        for declared, message in path_problems(spec, literals, self.env.files) if self.env.files else ():
            self.issue(node_id, declared, "forbidden_path", message)
        if spec.checks:
            for input_name, message in spec.instance.check(literals, frozenset(bindings), self.models):
                self.issue(node_id, input_name, "invalid_input", message)
        seed_input = spec.seed_input
        if seed_input is not None and literals.get(seed_input, 0) in RANDOM_SEEDS:
            literals = {name: value for name, value in literals.items() if name != seed_input}
        if len(dynamic) > 1:
            dynamic.sort(key=_first)
        self.nodes[node_id] = CompiledNode(node_id, spec, ports, bindings, tuple(upstream), literals, tuple(dynamic))

    def _check_upstream(self) -> None:
        """Run the ``check_upstream`` hooks with the literals of the nodes linked into each input."""
        wanted = {node_id for node_id, node in self.nodes.items() if node.spec.checks_upstream}
        if not wanted:
            return
        upstream: dict[str, dict[str, list[Upstream]]] = {node_id: {} for node_id in wanted}
        for node_id, port, link, _ in self.links:
            source = self.nodes.get(link.node)
            if node_id in wanted and source is not None:
                given = {name: p.default for name, p in source.ports.inputs.items()
                         if not p.required and p.default is not None and name not in source.bindings}
                upstream[node_id].setdefault(port.name, []).append(
                    Upstream(source.spec.type, link.output, {**given, **source.literals}))
        for node_id in wanted:
            node = self.nodes[node_id]
            for input_name, message in node.spec.instance.check_upstream(node.literals, upstream[node_id],
                                                                          self.models):
                self.issue(node_id, input_name, "invalid_input", message)

    def _check_binding(self, node_id: str, port: Port, binding: Binding) -> None:
        if isinstance(binding, LiteralBinding):
            self._check_literal(node_id, port, binding.value)
        elif isinstance(binding, InputBinding):
            decl = self.document.inputs.get(binding.name)
            if decl is None:
                declared = ", ".join(self.document.inputs) or "none"
                self.issue(node_id, port.name, "unknown_graph_input",
                           f"graph input '{binding.name}' is not declared (graph inputs: {declared})")
            elif not is_assignable(decl.type, port.type):
                self.issue(node_id, port.name, "type_mismatch",
                           f"graph input '{binding.name}' is {decl.type}; input '{port.name}' takes {port.type}")
        elif isinstance(binding, ListBinding):
            item_type = list_item(port.type)
            if item_type is None and port.type != "json":
                self.issue(node_id, port.name, "type_mismatch",
                           f"input '{port.name}' takes one {port.type}, not a list")
                return
            literal_items = [item.value for item in binding.items if isinstance(item, LiteralBinding)]
            if literal_items:
                self._check_literal(node_id, port, literal_items)
            for item in binding.items:
                if isinstance(item, InputBinding):
                    self._check_binding(node_id, make_port(port.name, item_type or "json"), item)

    def _check_literal(self, node_id: str, port: Port, value: Any) -> None:
        if port.type in LINK_ONLY_TYPES:
            self.issue(node_id, port.name, "invalid_literal",
                       f"input '{port.name}' takes a {port.type} from a link or a graph input, not a literal")
            return
        if isinstance(port.role, SeedRole) and value in RANDOM_SEEDS:
            return
        try:
            port.validate_literal(value)
        except ValidationError as exc:
            shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
            self.issue(node_id, port.name, "invalid_literal",
                       f"{port.name}: {shown} is not a valid {port.type}: {_pydantic_reason(exc)}")

    def _check_link(self, node_id: str, port: Port, link: LinkBinding, *, in_list: bool) -> None:
        if link.node not in self.document.nodes:
            self.issue(node_id, port.name, "missing_node", f"link to missing node '{link.node}'")
            return
        source = self.nodes.get(link.node)
        if source is None:
            return
        out = source.ports.outputs.get(link.output)
        if out is None:
            outputs = ", ".join(source.ports.outputs) or "none"
            self.issue(node_id, port.name, "unknown_output",
                       f"node '{link.node}' ({source.spec.type}) has no output '{link.output}' (outputs: {outputs})")
            return
        target = (list_item(port.type) or "json") if in_list else port.type
        if not (is_assignable(out.type, target) or (in_list and is_assignable(out.type, port.type))):
            self.issue(node_id, port.name, "type_mismatch",
                       f"'{link.node}.{link.output}' is {out.type}; input '{port.name}' takes {port.type}")

    def _order(self) -> list[str] | None:
        """A topological order (the standard library's sorter: networkx costs 0.2 s to import), or None with an
        issue for every cycle (networkx finds them all, on this rare path only)."""
        present = self.document.nodes
        upstream = {node_id: [up for up in node.upstream if up in present] for node_id, node in self.nodes.items()}
        order = _topological_order(present, upstream)
        if order is not None:
            return order
        import networkx as nx

        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_nodes_from(self.document.nodes)
        for node_id, ups in upstream.items():
            graph.add_edges_from((up, node_id) for up in ups)
        for component in nx.strongly_connected_components(graph):
            if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
                cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(component))]
                path = " -> ".join([*cycle, cycle[0]])
                self.issue(cycle[0], None, "cycle", f"the graph has a cycle: {path}")
        return None

    def _outputs(self) -> dict[str, LinkBinding]:
        if self.document.outputs:
            outputs: dict[str, LinkBinding] = {}
            for name, decl in self.document.outputs.items():
                link = parse_link(decl.from_)
                node = self.nodes.get(link.node)
                if node is None or link.output not in node.ports.outputs:
                    what = f"node '{link.node}'" if node is None else f"output '{link.output}' of '{link.node}'"
                    if link.node in self.document.nodes and node is None:
                        continue
                    self.issue(None, name, "bad_output",
                               f"graph output '{name}' points to {what}, which does not exist")
                    continue
                outputs[name] = link
            return outputs
        consumed = {link.node for node in self.nodes.values() for link in _links(node.bindings.values())}
        return {f"{node.id}.{out}": LinkBinding(node.id, out)
                for node in self.nodes.values() if node.id not in consumed for out in node.ports.outputs}


def _topological_order(nodes: Iterable[str], upstream: Mapping[str, list[str]]) -> list[str] | None:
    """Kahn's algorithm in the order ``graphlib.TopologicalSorter(...).static_order()`` gives (nodes as first named,
    each wave of ready nodes in the order they became ready), without its per-node objects and cycle search; None
    when there is a cycle."""
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for node_id in nodes:
        ups = upstream.get(node_id, ())
        if node_id not in waiting:
            waiting[node_id] = 0
            dependents[node_id] = []
        waiting[node_id] += len(ups)
        for up in ups:
            if up not in waiting:
                waiting[up] = 0
                dependents[up] = []
            dependents[up].append(node_id)
    order = [node_id for node_id, count in waiting.items() if count == 0]
    start = 0
    while start < len(order):
        end = len(order)
        for index in range(start, end):
            for child in dependents[order[index]]:
                count = waiting[child] - 1
                waiting[child] = count
                if count == 0:
                    order.append(child)
        start = end
    return order if len(order) == len(waiting) else None


def _links(bindings: Any) -> list[LinkBinding]:
    found: list[LinkBinding] = []
    for binding in bindings:
        if isinstance(binding, LinkBinding):
            found.append(binding)
        elif isinstance(binding, ListBinding):
            found.extend(item for item in binding.items if isinstance(item, LinkBinding))
    return found
