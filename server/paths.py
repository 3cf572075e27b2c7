"""The early check of a submitted graph's literal paths, so a forbidden file is a 422 before anything runs.

Which inputs hold paths is read from each node type's declaration (``Node.files``), never guessed from input
names; what a path may be is the server's ``FileAccess`` policy (``engine.files``), the same one the nodes apply
when they open the file. Links and graph inputs carry no literal here: the node checks them when it runs.
Media graph-input defaults are files to read as well.
"""

from __future__ import annotations

from typing import Any

from nodeforge.engine.errors import Issue
from nodeforge.engine.files import FileAccess, declared_strings
from nodeforge.engine.registry import Registry
from nodeforge.engine.types import MEDIA_TYPES


def path_issues(document: dict[str, Any], registry: Registry, files: FileAccess) -> list[Issue]:
    """An issue for every literal path in a raw graph document that the policy will refuse when it is used."""
    issues: list[Issue] = []
    nodes = document.get("nodes")
    for node_id, node in (nodes.items() if isinstance(nodes, dict) else ()):
        if not isinstance(node, dict) or node.get("type") not in registry:
            continue
        inputs = node.get("inputs")
        declared = registry.get(str(node["type"])).files
        for name, use in declared.items():
            value = inputs.get(name) if isinstance(inputs, dict) else None
            for text in declared_strings(value, use):
                problem = files.problem(text, use)
                if problem:
                    issues.append(Issue(str(node_id), name, "forbidden_path", f"'{text[:200]}' {problem}"))
    graph_inputs = document.get("inputs")
    for name, decl in (graph_inputs.items() if isinstance(graph_inputs, dict) else ()):
        if not isinstance(decl, dict):
            continue
        default = decl.get("default")
        if decl.get("type") in MEDIA_TYPES and isinstance(default, str):
            problem = files.problem(default, "read")
            if problem:
                issues.append(Issue(None, str(name), "forbidden_path", f"default '{default[:200]}' {problem}"))
    return issues
