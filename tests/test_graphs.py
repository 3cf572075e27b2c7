"""Every graph shipped in graphs/ validates against the installed nodes; the engine keeps its layering."""

import ast
import json
from pathlib import Path

import pytest

from engine.document import load_document
from engine.graph import GraphEnv, validate
from engine.library import GraphLibrary
from engine.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = sorted(p for p in (ROOT / "graphs").glob("*.json") if p.name != "graph.schema.json")


@pytest.mark.parametrize("path", GRAPHS, ids=[p.stem for p in GRAPHS])
def test_shipped_graph_validates(path: Path) -> None:
    env = GraphEnv(Registry.discover(), GraphLibrary([ROOT / "graphs"]))
    assert validate(load_document(path), env) == []


def test_shipped_graphs_are_canonical_json() -> None:
    for path in GRAPHS:
        assert json.loads(path.read_text())["schema"] == "nodeforge/graph@1", path


@pytest.mark.parametrize(("package", "forbidden"), [("engine", ("nodes", "server")), ("nodes", ("server",))])
def test_packages_keep_their_layering(package: str, forbidden: tuple[str, ...]) -> None:
    """engine/ imports neither nodes/ nor server/; nodes/ never imports server/ (lazily inside a function too)."""
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{package}/{path.name} imports {name}"
