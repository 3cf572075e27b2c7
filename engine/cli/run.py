"""``nodeforge run``: a graph (or a sweep of it) in a session opened from the command's options, with the live
per-node table on a terminal, then a summary, the run record as JSON, or a sweep's cells."""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.cli.graph_commands import graph_env, invalid, load_graph_file
from nodeforge.engine.cli.options import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, engine_config, previews_of
from nodeforge.engine.errors import EngineError, GraphInputError, GraphValidationError, UsageError

if TYPE_CHECKING:
    from nodeforge.engine.cache import ResultCache
    from nodeforge.engine.compiler import CompiledGraph, GraphEnv
    from nodeforge.engine.config import EngineConfig
    from nodeforge.engine.previews import Previews
    from nodeforge.engine.record import RunRecord
    from nodeforge.engine.session import RunResult, Session
    from nodeforge.engine.sweep import Sweep


def run_command(args: argparse.Namespace) -> int:
    """``nodeforge run``: exit code 0 when the run succeeded, 130 when cancelled, 1 otherwise."""
    from nodeforge.engine.cli.run_sweep import report, sweep_of
    from nodeforge.engine.compiler import compile_graph
    from nodeforge.engine.datadir import resolve_data_dir
    from nodeforge.engine.inputs import parse_sets

    data_dir = resolve_data_dir(args.data_dir)
    config = engine_config(args, data_dir, cache=not args.no_cache)
    try:
        document = load_graph_file(args.graph)
    except GraphValidationError as exc:
        return invalid(args.graph, exc.issues)
    given = parse_sets(document, args.sets)
    sweep = sweep_of(document, args.sweeps, args.zip, args.rows)
    if sweep is not None:
        document, given = sweep.document, {**given, **sweep.inputs}
    env = graph_env(args, Path(args.graph), data_dir)
    try:
        compiled = compile_graph(document, env)
    except GraphValidationError as exc:
        return invalid(args.graph, exc.issues)
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
        return invalid(args.graph, exc.issues)
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
    from nodeforge.engine.cli.progress import ProgressDisplay
    from nodeforge.engine.cli.run_sweep import CellProgress

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
