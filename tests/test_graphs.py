"""Every graph shipped in graphs/ validates against the installed nodes; the engine keeps its layering."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nodeforge.engine.compiler import GraphEnv, validate
from nodeforge.engine.document import load_document
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary

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


FRONT_ENDS = ("nodeforge.engine.cli", "rich", "argparse", "html")
"""The terminal and HTML front ends: engine/cli/ (commands, progress table, sweep front end, comparison page) and
the libraries only they use (argparse and html are standard modules that libraries load too: the import check
counts them, the loaded-modules check does not)."""


def test_the_engine_core_imports_no_front_end() -> None:
    """engine/ outside engine/cli/ (the core, and the Ray backend in engine/ray/) imports nothing of the front ends,
    lazily inside a function neither, and no module of it is relative; importing all of it, and every name of the
    public API, loads none of them."""
    core = [path for path in (ROOT / "engine").rglob("*.py") if (ROOT / "engine" / "cli") not in path.parents]
    for path, name in imports_in(ROOT / "engine"):
        if path in core:
            assert not _front_end(name), f"engine/{path.relative_to(ROOT / 'engine')} imports {name}"
    for path in core:
        relative = [node for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.ImportFrom) and node.level]
        assert not relative, f"engine/{path.relative_to(ROOT / 'engine')} imports relatively"
    names = [".".join(("nodeforge", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
             for path in core]
    probe = ("import importlib, sys\nimport nodeforge.engine as nf\n"
             f"for name in {sorted(names)!r}: importlib.import_module(name)\n"
             "for name in nf.__all__: getattr(nf, name)\n"
             "print('\\n'.join(sorted(sys.modules)))\n")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert [name for name in loaded.stdout.split() if _front_end(name, FRONT_ENDS[:2])] == []


def _front_end(name: str, front_ends: tuple[str, ...] = FRONT_ENDS) -> bool:
    return any(name == front or name.startswith(front + ".") for front in front_ends)


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


def test_no_two_modules_share_a_basename() -> None:
    """A module's name says its job: two modules of one name in engine/, nodes/ and server/ would be two jobs under
    one name (package ``__init__``, ``__main__`` and ``cli`` entry modules excepted)."""
    entry_modules = {"__init__.py", "__main__.py", "cli.py"}
    seen: dict[str, list[str]] = {}
    for package in ("engine", "nodes", "server"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name not in entry_modules:
                seen.setdefault(path.name, []).append(path.relative_to(ROOT).as_posix())
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
