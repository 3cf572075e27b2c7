"""The ``nodeforge`` command line: run, validate, nodes, schema, cache.

Exit codes: 0 success; 1 the graph is invalid or the run failed; 2 a bad command line (one line, no traceback);
130 cancelled with Ctrl-C.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import gc
import json
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from nodeforge.engine.cli_devices import DEVICES_HELP, add_device_options, devices_command
from nodeforge.engine.errors import EngineError, GraphInputError, GraphValidationError, Issue, UsageError

if TYPE_CHECKING:
    from nodeforge.engine.cache import ResultCache
    from nodeforge.engine.config import EngineConfig
    from nodeforge.engine.document import GraphDocument
    from nodeforge.engine.graph import CompiledGraph, GraphEnv
    from nodeforge.engine.previews import Previews
    from nodeforge.engine.record import RunRecord
    from nodeforge.engine.registry import Registry
    from nodeforge.engine.session import RunResult, Session
    from nodeforge.engine.sweep import Sweep

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


if TYPE_CHECKING:
    Commands: TypeAlias = argparse._SubParsersAction[_Parser]
    """The subcommands a plugin command's ``register(commands, common)`` adds its parser to."""
CommonOptions = Callable[[argparse.ArgumentParser], None]
"""``register``'s ``common``: adds the options every graph command takes (``--data-dir``, ``--plugins``)."""


BUILTIN_COMMANDS = ("run", "validate", "nodes", "schema", "devices", "cache")


def build_parser(plugin_commands: bool = True) -> argparse.ArgumentParser:
    """The command line; ``plugin_commands`` False leaves out the installed packages' commands (importing their
    modules costs more than a small graph's validation)."""
    parser = _Parser(prog="nodeforge", description="Typed node-graph pipelines for generative AI.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-dir", help="state folder (cache, models, graphs); env NODEFORGE_DATA_DIR")
        sub.add_argument("--plugins", action="append", default=[], metavar="DIR",
                         help="a folder of plugin node modules (repeatable)")

    run = commands.add_parser("run", help="run a graph")
    run.add_argument("graph", help="a graph .json file, or a PNG that nodeforge wrote (re-runs its graph)")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                     help="a graph input, parsed by its declared type (a media input takes a file path)")
    run.add_argument("--json", action="store_true", help="print the run record as one JSON object")
    run.add_argument("--sweep", action="append", default=[], metavar="NAME=VALUES", dest="sweeps", help="run over "
                     "values of an input (a,b,c or FIRST..LAST; more --sweep: every combination); writes compare.html")
    run.add_argument("--zip", action="store_true", help="with --sweep: take the i-th values of every axis together")
    run.add_argument("--rows", metavar="FILE", help="run once per row of a .jsonl or .csv file of inputs (a "
                                                    "batch; a re-run skips finished rows through the cache)")
    run.add_argument("--out", help="folder for media outputs (default outputs/<run id>)")
    add_preview_options(run)
    add_engine_options(run, cache=True)
    common(run)

    validate = commands.add_parser("validate", help="check a graph and list every issue")
    validate.add_argument("graph")
    validate.add_argument("--json", action="store_true", help='print {"valid": bool, "issues": [...]}')
    common(validate)

    nodes = commands.add_parser("nodes", help="the node catalogue")
    nodes.add_argument("--json", action="store_true", help="every node type with JSON Schema of its ports")
    common(nodes)

    commands.add_parser("schema", help="print the JSON Schema of the graph document")

    devices = commands.add_parser("devices", help="devices, their memory budgets and modes, resident models")
    add_device_options(devices)
    devices.add_argument("--json", action="store_true")

    cache = commands.add_parser("cache", help="inspect or clear the result cache")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--data-dir")
    if plugin_commands:
        _add_plugin_commands(commands, common)
    return parser


def add_engine_options(parser: argparse.ArgumentParser, *, cache: bool = False,
                       devices_help: str = DEVICES_HELP) -> None:
    """The options of every command that opens a session (run, serve, watch), read by ``engine_config``: one
    place, so no command lacks one the others have. ``cache`` adds ``--no-cache``."""
    add_device_options(parser, devices_help)
    parser.add_argument("--workers", type=int, default=8, help="threads for ready nodes within a run (default 8)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="where nodes run: this process (local, default) or a Ray cluster (ray: one worker per "
                             "GPU; needs pip install 'nodeforge[ray]')")
    parser.add_argument("--address", help="with --backend ray: auto (the cluster this machine joined), HOST:PORT of "
                                          "its head, or ray://HOST:10001; default: start a local cluster")
    if cache:
        parser.add_argument("--no-cache", action="store_true", help="neither read nor write the result cache")


def add_preview_options(parser: argparse.ArgumentParser) -> None:
    """``--previews DIR`` and its method, for the commands that run graphs from this terminal (run, watch)."""
    parser.add_argument("--previews", metavar="DIR", help="keep diffusion nodes' step previews in DIR as "
                                                         "<node>-<step>.jpg (a few per second per node)")
    parser.add_argument("--preview-method", choices=["latent", "taesd"], default="latent",
                        help="with --previews: latent (a fast projection, default) or taesd (the model family's tiny "
                             "autoencoder, tiny/taesd for tiny models; downloaded once like any model)")


def previews_of(args: argparse.Namespace) -> Previews | None:
    """Where ``add_preview_options`` keeps step previews (the folder is made now), or None without ``--previews``;
    UsageError for a method without a folder."""
    from nodeforge.engine.previews import FolderSink, Previews

    if args.preview_method != "latent" and not args.previews:
        raise UsageError("--preview-method needs --previews DIR")
    return Previews(FolderSink(Path(args.previews)), args.preview_method) if args.previews else None


def engine_config(args: argparse.Namespace, data_dir: Path, *, cache: bool = True) -> EngineConfig:
    """The engine configuration of a command's ``add_engine_options`` (``cache`` False for its ``--no-cache``);
    UsageError naming a bad option."""
    from nodeforge.engine.config import EngineConfig

    try:
        return EngineConfig(data_dir=data_dir, devices=args.devices, vram_budget=args.vram_budget,
                            memory_mode=args.memory_mode, backend=args.backend, address=args.address,
                            workers=args.workers, cache=cache)
    except EngineError as exc:
        raise UsageError(str(exc)) from None


COMMANDS_GROUP = "nodeforge.commands"


def _add_plugin_commands(commands: Commands, common: CommonOptions) -> None:
    """Commands contributed by installed packages (``serve``, ``models``...): entry points in the group
    ``nodeforge.commands``, each ``register(subparsers, add_common_options)`` setting a ``handler(args) -> int``.
    The engine stays free of imports from the server and node packages."""
    import importlib.metadata

    for entry in sorted(importlib.metadata.entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            entry.load()(commands, common)
        except Exception as exc:
            print(f"nodeforge: command '{entry.name}' unavailable: {type(exc).__name__}: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in words if not word.startswith("-")), None)
    try:
        # a built-in command needs no plugin command; help, a plugin's command or a mistyped one loads them all
        args = build_parser(plugin_commands=command not in BUILTIN_COMMANDS).parse_args(words)
        return _dispatch(args)
    except UsageError as exc:
        print(f"nodeforge: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nodeforge: interrupted", file=sys.stderr)
        return EXIT_CANCELLED


def _dispatch(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    if args.command == "schema":
        from nodeforge.engine.document import document_schema

        print(json.dumps(document_schema(), indent=2))
        return EXIT_OK
    if args.command == "cache":
        return _cache(args)
    if args.command == "devices":
        return devices_command(args)
    if args.command == "nodes":
        return _nodes(args)
    if args.command == "validate":
        return _validate(args)
    return _run(args)


def _registry(args: argparse.Namespace) -> Registry:
    from nodeforge.engine.registry import Registry

    for folder in args.plugins:
        if not Path(folder).is_dir():
            raise UsageError(f"--plugins {folder}: no such folder")
    registry = Registry.discover([Path(folder) for folder in args.plugins])
    for problem in registry.problems:
        print(f"nodeforge: plugin {problem.plugin} not loaded: {problem.reason}", file=sys.stderr)
    gc.freeze()  # modules, node types and their schemas live as long as the process: the collector skips them
    return registry


def _env(args: argparse.Namespace, graph_path: Path, data_dir: Path | None) -> GraphEnv:
    from nodeforge.engine.graph import GraphEnv
    from nodeforge.engine.library import GraphLibrary

    folders = [graph_path.resolve().parent] + ([data_dir / "graphs"] if data_dir else [])
    return GraphEnv(_registry(args), GraphLibrary(folders))


def _load(path_text: str) -> GraphDocument:
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


def _print_issues(issues: list[Issue]) -> None:
    for issue in issues:
        print(f"  {issue}", file=sys.stderr)


def _invalid(graph: str, issues: list[Issue]) -> int:
    """An invalid graph: how many issues, then one line each; exit code 1."""
    print(f"{graph}: {len(issues)} issue(s)", file=sys.stderr)
    _print_issues(issues)
    return EXIT_FAILED


def _validate(args: argparse.Namespace) -> int:
    from nodeforge.engine.datadir import resolve_data_dir
    from nodeforge.engine.graph import validate

    try:
        document = _load(args.graph)
        issues = validate(document, _env(args, Path(args.graph), resolve_data_dir(args.data_dir)))
    except GraphValidationError as exc:
        issues = exc.issues
    if args.json:
        print(json.dumps({"valid": not issues, "issues": [issue.to_dict() for issue in issues]}, indent=2))
    elif issues:
        print(f"{args.graph}: {len(issues)} issue(s)", file=sys.stderr)
        _print_issues(issues)
    else:
        print(f"{args.graph}: valid")
    return EXIT_FAILED if issues else EXIT_OK


def _nodes(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.json:
        print(json.dumps({"nodes": registry.catalogue(),
                          "problems": [problem.to_dict() for problem in registry.problems]}, indent=2))
        return EXIT_OK
    for spec in registry:
        summary = spec.description.splitlines()[0] if spec.description else ""
        print(f"{spec.type:<20} {spec.version:<8} {summary}")
    return EXIT_OK


def _cache(args: argparse.Namespace) -> int:
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


def _run(args: argparse.Namespace) -> int:
    from nodeforge.engine.cli_sweep import report, sweep_of
    from nodeforge.engine.datadir import resolve_data_dir
    from nodeforge.engine.graph import compile_graph
    from nodeforge.engine.inputs import parse_sets

    data_dir = resolve_data_dir(args.data_dir)
    config = engine_config(args, data_dir, cache=not args.no_cache)
    try:
        document = _load(args.graph)
    except GraphValidationError as exc:
        return _invalid(args.graph, exc.issues)
    given = parse_sets(document, args.sets)
    sweep = sweep_of(document, args.sweeps, args.zip, args.rows)
    if sweep is not None:
        document, given = sweep.document, {**given, **sweep.inputs}
    env = _env(args, Path(args.graph), data_dir)
    try:
        compiled = compile_graph(document, env)
    except GraphValidationError as exc:
        return _invalid(args.graph, exc.issues)
    except EngineError as exc:
        raise UsageError(str(exc)) from None
    gc.freeze()  # the compiled graph lives as long as the process too
    previews = previews_of(args)
    session = open_for(config, env, accelerated=any(node.spec.cls.accelerator for node in compiled.nodes.values()))
    if session is None:
        return EXIT_FAILED
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    run_id = uuid.uuid4().hex[:12]
    out_dir = Path(args.out) if args.out else Path("outputs") / run_id
    try:
        result = execute_with_progress(session, compiled, given, run_id, cancel, out_dir, previews=previews,
                                       interactive=not args.json and sys.stdout.isatty(), sweep=sweep)
    except GraphValidationError as exc:
        return _invalid(args.graph, exc.issues)
    except GraphInputError as exc:
        raise UsageError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        session.close()
    record = result.record
    if sweep is not None:
        report(sweep, record, out_dir, as_json=args.json)
    elif args.json:
        print(json.dumps(record.to_json(), ensure_ascii=False))
    else:
        print_summary(record)
    return {"succeeded": EXIT_OK, "cancelled": EXIT_CANCELLED}.get(record.status, EXIT_FAILED)


def open_for(config: EngineConfig, env: GraphEnv, *, cache: ResultCache | None = None,
             devices: list[str] | None = None, accelerated: bool) -> Session | None:
    """The session of a command (run, watch; ``Session.open``): options that do not fit the devices are a
    UsageError; a Ray cluster that cannot be reached is printed, and None returned."""
    from nodeforge.engine.session import Session

    if config.backend == "ray":
        print(f"nodeforge: connecting to Ray ({config.address or 'a new local cluster'}) and starting device workers",
              file=sys.stderr, flush=True)
    try:
        return Session.open(config, env, cache=cache, devices=devices, accelerated=accelerated)
    except EngineError as exc:
        if config.backend != "ray":
            raise UsageError(str(exc)) from None
        print(f"nodeforge: {exc}", file=sys.stderr)
        return None


def execute_with_progress(session: Session, compiled: CompiledGraph, given: dict[str, Any], run_id: str,
                          cancel: threading.Event, out_dir: Path, *, interactive: bool,
                          env: GraphEnv | None = None, previews: Previews | None = None,
                          sweep: Sweep | None = None) -> RunResult:
    """Run a graph in a session, with the live per-node table (a bar of cells for a sweep) when ``interactive``
    (a terminal, not --json)."""
    if not interactive:
        return session.run(compiled, given, env=env, run_id=run_id, cancel=cancel, out_dir=out_dir, previews=previews)
    from nodeforge.engine.cli_sweep import CellProgress
    from nodeforge.engine.progress import ProgressDisplay

    with CellProgress(sweep) if sweep is not None else \
            ProgressDisplay({node_id: node.spec.type for node_id, node in compiled.nodes.items()}) as display:
        return session.run(compiled, given, env=env, run_id=run_id, cancel=cancel, out_dir=out_dir,
                           listener=display.listen, previews=previews)


def print_summary(record: RunRecord) -> None:
    """One status line, then each output (media by file path)."""
    counts: dict[str, int] = {}
    for node in record.nodes.values():
        counts[node.status] = counts.get(node.status, 0) + 1
    detail = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    print(f"run {record.id}: {record.status} ({detail})")
    for name, value in record.outputs.items():
        shown = value["path"] if isinstance(value, dict) and "path" in value else value
        print(f"  {name}: {shown}")
    if record.error:
        print(f"error: {record.error}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
