"""What the graph commands share (the registry with its plugins, a graph's environment, reading a graph file,
printing issues) and the commands that only read: ``validate``, ``nodes`` and ``cache``."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nodeforge.engine.cli.options import EXIT_FAILED, EXIT_OK
from nodeforge.engine.errors import EngineError, GraphValidationError, Issue, UsageError

if TYPE_CHECKING:
    from nodeforge.engine.compiler import GraphEnv
    from nodeforge.engine.document import GraphDocument
    from nodeforge.engine.registry import Registry


def registry_of(args: argparse.Namespace) -> Registry:
    """The node registry with the command's ``--plugins`` folders; each plugin not loaded is printed."""
    from nodeforge.engine.registry import Registry

    for folder in args.plugins:
        if not Path(folder).is_dir():
            raise UsageError(f"--plugins {folder}: no such folder")
    registry = Registry.discover([Path(folder) for folder in args.plugins])
    for problem in registry.problems:
        print(f"nodeforge: plugin {problem.plugin} not loaded: {problem.reason}", file=sys.stderr)
    gc.freeze()  # modules, node types and their schemas live as long as the process: the collector skips them
    return registry


def graph_env(args: argparse.Namespace, graph_path: Path, data_dir: Path | None) -> GraphEnv:
    """The environment of a graph file: the registry, and saved graphs beside it and in the data dir."""
    from nodeforge.engine.compiler import GraphEnv
    from nodeforge.engine.saved_graphs import GraphLibrary

    folders = [graph_path.resolve().parent] + ([data_dir / "graphs"] if data_dir else [])
    return GraphEnv(registry_of(args), GraphLibrary(folders))


def load_graph_file(path_text: str) -> GraphDocument:
    """The graph document of a file; UsageError when there is none or it cannot be read."""
    from nodeforge.engine.document import load_document

    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"graph file {path_text} does not exist")
    try:
        return load_document(path)
    except GraphValidationError:
        raise
    except EngineError as exc:
        raise UsageError(str(exc)) from None


def print_issues(issues: list[Issue]) -> None:
    for issue in issues:
        print(f"  {issue}", file=sys.stderr)


def invalid(graph: str, issues: list[Issue]) -> int:
    """An invalid graph: how many issues, then one line each; exit code 1."""
    print(f"{graph}: {len(issues)} issue(s)", file=sys.stderr)
    print_issues(issues)
    return EXIT_FAILED


def validate_command(args: argparse.Namespace) -> int:
    """``nodeforge validate``: every issue of a graph, or that it is valid."""
    from nodeforge.engine.compiler import validate
    from nodeforge.engine.datadir import resolve_data_dir

    try:
        document = load_graph_file(args.graph)
        issues = validate(document, graph_env(args, Path(args.graph), resolve_data_dir(args.data_dir)))
    except GraphValidationError as exc:
        issues = exc.issues
    if args.json:
        print(json.dumps({"valid": not issues, "issues": [issue.to_dict() for issue in issues]}, indent=2))
    elif issues:
        print(f"{args.graph}: {len(issues)} issue(s)", file=sys.stderr)
        print_issues(issues)
    else:
        print(f"{args.graph}: valid")
    return EXIT_FAILED if issues else EXIT_OK


def nodes_command(args: argparse.Namespace) -> int:
    """``nodeforge nodes``: the node catalogue, one line a type (or JSON with each type's port schemas)."""
    registry = registry_of(args)
    if args.json:
        print(json.dumps({"nodes": registry.catalogue(),
                          "problems": [problem.to_dict() for problem in registry.problems]}, indent=2))
        return EXIT_OK
    for spec in registry:
        summary = spec.description.splitlines()[0] if spec.description else ""
        print(f"{spec.type:<20} {spec.version:<8} {summary}")
    return EXIT_OK


def cache_command(args: argparse.Namespace) -> int:
    """``nodeforge cache info|clear``."""
    from nodeforge.engine.config import result_cache
    from nodeforge.engine.datadir import resolve_data_dir

    cache = result_cache(resolve_data_dir(args.data_dir))
    try:
        if args.action == "clear":
            cache.clear()
            print("cache cleared")
        else:
            info = cache.info()
            print(json.dumps({"path": info["path"], "entries": info["entries"], "bytes": info["bytes"]}, indent=2))
    finally:
        cache.close()
    return EXIT_OK
