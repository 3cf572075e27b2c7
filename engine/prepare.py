"""Stage 3 of a run: every node's literal inputs, drawn seeds and Merkle key, before anything executes.

Runs in topological order, so a node's key can include its upstream keys; no value is computed or hashed except
the literals and graph inputs themselves (and a node's ``fingerprint`` of outside state, such as a file's
content). A graph input that feeds a node input is checked against that input here (its range, its enum),
since only now is its value known.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from nodeforge.engine.backend import Prepared
from nodeforge.engine.compiler import CompiledGraph, CompiledNode, GraphEnv
from nodeforge.engine.context import BoundValue
from nodeforge.engine.declarations import RANDOM_SEEDS
from nodeforge.engine.document import Binding, InputBinding, LinkBinding, LiteralBinding
from nodeforge.engine.errors import EngineError, GraphValidationError, Issue
from nodeforge.engine.keys import finish_key, input_part, key_prefix, link_material, list_material, literal_material
from nodeforge.engine.keys import quoted as _STRING
from nodeforge.engine.types import LINK_ONLY_TYPES


def prepare(graph: CompiledGraph, bound: Mapping[str, BoundValue], env: GraphEnv,
            seeds: dict[str, int]) -> dict[str, Prepared]:
    """Literals, key material, key and declared models per node; every seed used is written into ``seeds``.
    Raises GraphValidationError when a graph input's value does not fit the node input it feeds."""
    issues: list[Issue] = []
    prepared: dict[str, Prepared] = {}
    nodes = graph.nodes
    source = env.registry.model_source

    def remote(name: str) -> bool:
        return source.remote_name(name) is not None

    for node_id in graph.order:
        node = nodes[node_id]
        spec = node.spec
        literals = node.literals  # copied before the first change: most nodes take their literals as compiled
        materials: dict[str, str] = {}
        prefix = node.key_prefix
        if prefix is None:
            prefix = node.key_prefix = _literal_prefix(node)
        parts = [prefix]
        cacheable = bool(prefix)
        for name, binding in node.dynamic:
            if isinstance(binding, LinkBinding):  # most dynamic inputs: the upstream key and output name
                upstream = prepared[binding.node].key
                if upstream is None:
                    cacheable = False
                else:
                    link = materials[name] = f"l{upstream}.{binding.output}"
                    parts.append(f"{_STRING(name)}={link};")
                continue
            material, value, known = _material(binding, prepared, bound)
            if material is None:
                cacheable = False
            else:
                materials[name] = material
                parts.append(input_part(name, material))
            if known:
                if literals is node.literals:
                    literals = dict(literals)
                literals[name] = value
                if isinstance(binding, InputBinding):
                    issues.extend(_check_bound_literal(node, name, binding.name, literals))
        seed_input = spec.seed_input
        if seed_input is not None and seed_input in node.ports.inputs:
            if literals is node.literals:
                literals = dict(literals)
            seed = _draw_seed(node, seed_input, literals, seeds)
            if seed is not None:
                materials[seed_input] = literal_material(seed)
                parts.append(input_part(seed_input, materials[seed_input]))
        accelerated = spec.needs_device(literals, remote) if spec.cls.accelerator else False
        models = spec.models(literals) if accelerated else []
        prepared[node_id] = Prepared(literals, materials, key=_key(node, literals, parts, env) if cacheable else None,
                                     models=models, accelerated=accelerated)
    if issues:
        raise GraphValidationError(issues)
    return prepared


def _literal_prefix(node: CompiledNode) -> str:
    """The key material the document fixes (type, version, literals); empty when a literal cannot be keyed."""
    spec = node.spec
    try:
        return key_prefix(spec.type, spec.version, node.literals.items(), spec.key_head)
    except TypeError:
        return ""


def _draw_seed(node: CompiledNode, name: str, literals: dict[str, Any], seeds: dict[str, int]) -> int | None:
    """Draw a random seed for the seed input ``name`` (-1 or "random", given or by default) and record every
    seed; returns a drawn seed."""
    port = node.ports.inputs[name]
    binding = node.bindings.get(name)
    seed = port.default if binding is None else literals.get(name, getattr(binding, "value", None))
    drawn = None
    if seed in RANDOM_SEEDS and not isinstance(seed, bool):
        seed = drawn = random.SystemRandom().randrange(2**31)
        literals[name] = seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        seeds[node.id] = seed
    return drawn


def _material(binding: Binding, prepared: Mapping[str, Prepared],
              bound: Mapping[str, BoundValue]) -> tuple[str | None, Any, bool]:
    """(key material, literal value, whether the value is known before running)."""
    if isinstance(binding, LinkBinding):
        key = prepared[binding.node].key
        return (None if key is None else link_material(key, binding.output)), None, False
    if isinstance(binding, InputBinding):
        value = bound[binding.name]
        return value.material, value.value, True
    if isinstance(binding, LiteralBinding):
        return literal_material(binding.value), binding.value, True
    items: list[str] = []
    for item in binding.items:
        material = _material(item, prepared, bound)[0]
        if material is None:
            return None, None, False
        items.append(material)
    return list_material(items), None, False


def _check_bound_literal(node: CompiledNode, name: str, graph_input: str, literals: dict[str, Any]) -> list[Issue]:
    """A graph input's value checked against the node input it feeds (its range, its enum)."""
    port = node.ports.inputs[name]
    if literals[name] is None or port.type in LINK_ONLY_TYPES:
        return []
    try:
        literals[name] = port.validate_literal(literals[name])
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        return [Issue(node.id, name, "invalid_literal",
                      f"graph input '{graph_input}' gives {name} = {literals[name]!r}: {reason}")]
    return []


def _key(node: CompiledNode, literals: dict[str, Any], parts: list[str], env: GraphEnv) -> str | None:
    """The node's cache key; None (never cached) when its fingerprint of outside state cannot be taken."""
    spec = node.spec
    fingerprint = None
    if spec.fingerprints:
        instance = spec.instance
        try:
            fingerprint = instance.fingerprint(literals, env)
        except EngineError:
            return None
        if fingerprint is None:
            return None
    return finish_key(parts, fingerprint)
