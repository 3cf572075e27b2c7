"""Validation derived from input declarations (``engine.declarations``), the same passes for every node type.

A model name is checked against the families of its input's ``ModelKind`` by the catalogue, without loading
anything; a remote name (the catalogue's ``remote_name``) only where the kind allows one. The issues carry the
code ``invalid_input``, as a node's own ``check`` hook's do. Called at validation with the literals and again
just before a node runs with the values links and graph inputs brought.

Under a path policy (``GraphEnv.files``: the server, any embedder that restricts files), every literal path a
declared file, folder or model input holds, and every media graph input's default, is checked at validation
(``forbidden_path``), so a forbidden file is refused before anything runs; links and graph inputs carry no
literal then and are checked when the node opens them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from nodeforge.engine.files import FileAccess, declared_strings
from nodeforge.engine.types import MEDIA_TYPES

if TYPE_CHECKING:
    from nodeforge.engine.declarations import ModelKind
    from nodeforge.engine.document import GraphDocument
    from nodeforge.engine.model_source import ModelSource
    from nodeforge.engine.node import NodeSpec


def model_problems(spec: NodeSpec, values: Mapping[str, Any],
                   models: ModelSource) -> Iterator[tuple[str, str]]:
    """(input, message) for every model name given to a declared model input that its kind cannot load."""
    for input_name, kind in spec.model_kinds.items():
        for name in declared_strings(values.get(input_name), "model"):
            problem = name_problem(name, kind, models)
            if problem is not None:
                yield input_name, problem


def name_problem(name: str, kind: ModelKind, models: ModelSource) -> str | None:
    """Why ``name`` cannot be loaded as ``kind`` (None: it may be); an empty name means "none" and is fine."""
    text = name.strip()
    if not text or text in kind.extra_names:
        return None
    remote = models.remote_name(text)
    if remote is not None:
        if not kind.remote:
            return f"model '{_shown(text)}' names a remote server; this input loads local models only"
        return None if remote else f"'{_shown(text)}' names no remote model: it needs a model name after the colon"
    return models.problem(text, families=kind.families)


def path_problems(spec: NodeSpec, literals: Mapping[str, Any], files: FileAccess) -> Iterator[tuple[str, str]]:
    """(input, message) for every literal path of a declared input that the policy will refuse when it is used."""
    for input_name, use in spec.files.items():
        for text in declared_strings(literals.get(input_name), use):
            problem = files.problem(text, use)
            if problem:
                yield input_name, f"'{_shown(text)}' {problem}"


def default_path_problems(document: GraphDocument, files: FileAccess) -> Iterator[tuple[str, str]]:
    """(graph input, message) for every media graph input whose default file the policy will refuse."""
    for name, decl in document.inputs.items():
        if decl.type in MEDIA_TYPES and isinstance(decl.default, str):
            problem = files.problem(decl.default, "read")
            if problem:
                yield name, f"default '{_shown(decl.default)}' {problem}"


def _shown(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."
