"""Every graph shipped in graphs/ validates against the installed nodes; the engine keeps its layering."""

import ast
import json
from pathlib import Path

import pytest

from nodeforge.engine.document import load_document
from nodeforge.engine.graph import GraphEnv, validate
from nodeforge.engine.library import GraphLibrary
from nodeforge.engine.registry import Registry

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
    for path, name in imports_in(ROOT / package):
        parts = name.split(".")
        assert parts[:2] not in [["nodeforge", other] for other in forbidden], f"{package}/{path.name} imports {name}"


def test_the_project_is_imported_by_one_name() -> None:
    """Installed, only ``nodeforge`` lands in site-packages: no module may import ``engine``, ``nodes`` or
    ``server`` as a top-level name."""
    for folder in ("engine", "nodes", "server", "tests", "bench"):
        for path, name in imports_in(ROOT / folder):
            assert name.split(".")[0] not in ("engine", "nodes", "server"), f"{folder}/{path.name} imports {name}"


def imports_in(folder: Path) -> list[tuple[Path, str]]:
    found = []
    for path in folder.rglob("*.py"):
        if "node_modules" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.append((path, node.module or ""))
    return found
