"""The editor's ES modules (server/static/js) import each other in layers, with no circle: a module that needs
something from a higher layer takes it as a callback. Parsed with a regular expression, no browser."""

from __future__ import annotations

import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "server" / "static" / "js"
# `import ... from "./x.js"` (the names may span lines), `import "./x.js"` and `export ... from "./x.js"`.
IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s*["'](\.[^"']+)["']|^\s*import\s*["'](\.[^"']+)["']""",
                    re.MULTILINE | re.DOTALL)


def module_imports() -> dict[str, set[str]]:
    """Each module's name (``canvas-links.js``) -> the local modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(STATIC.glob("*.js")):
        targets = set()
        for match in IMPORT.finditer(path.read_text(encoding="utf-8")):
            target = (path.parent / (match.group(1) or match.group(2))).resolve()
            if target.parent == STATIC.resolve():
                targets.add(target.name)
        graph[path.name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles, each as the modules of one strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == name:
                    break
            if len(component) > 1 or name in graph.get(name, ()):
                found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_the_parser_sees_the_imports() -> None:
    graph = module_imports()
    assert "canvas.js" in graph["main.js"]
    assert "canvas-litegraph.js" in graph["canvas.js"]  # a multi-line import
    assert cycles({"a.js": {"b.js"}, "b.js": {"c.js"}, "c.js": {"a.js"}, "d.js": {"a.js"}}) == [
        ["a.js", "b.js", "c.js"]]


def test_the_editor_modules_import_each_other_without_a_circle() -> None:
    graph = module_imports()
    missing = {f"{name} -> {target}" for name, targets in graph.items() for target in targets if target not in graph}
    assert not missing, f"imports of modules that do not exist: {sorted(missing)}"
    assert cycles(graph) == [], "the editor's modules import each other in a circle"
