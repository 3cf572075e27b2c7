"""``nodeforge watch GRAPH``: run a graph, then run it again each time its file (or a plugin) changes.

One engine session, and so one memory cache in front of the disk cache and one set of resident models, serves
every run (a new one only when the graph needs other devices): an edit recomputes the nodes it
changed and their descendants only. An edit that breaks the graph prints its issues and waits for the next save.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.cli import (
    add_engine_options,
    add_preview_options,
    engine_config,
    execute_with_progress,
    open_for,
    previews_of,
    print_summary,
)
from nodeforge.engine.errors import UsageError

if TYPE_CHECKING:
    import watchfiles

    from nodeforge.engine.cache import ResultCache
    from nodeforge.engine.cli import Commands, CommonOptions
    from nodeforge.engine.compiler import CompiledGraph, GraphEnv
    from nodeforge.engine.record import RunRecord
    from nodeforge.engine.registry import Registry
    from nodeforge.engine.session import Session

EXIT_OK = 0


def register_watch(commands: Commands, common: CommonOptions) -> None:
    watch = commands.add_parser("watch", help="run a graph, then again on every change of its file")
    watch.add_argument("graph", help="a graph .json file")
    watch.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="sets",
                       help="a graph input, parsed by its declared type")
    watch.add_argument("--json", action="store_true", help="print each run record as one line of JSON")
    watch.add_argument("--out", help="folder for media outputs (default outputs/<run id>)")
    add_preview_options(watch)
    add_engine_options(watch, cache=True)
    common(watch)
    watch.set_defaults(handler=watch_command)


class WatchSession:
    """The state kept between runs: the registry, the cache, and the engine session per device set (one on Ray,
    whose cluster is the devices)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from nodeforge.engine.config import open_cache
        from nodeforge.engine.datadir import resolve_data_dir

        self.args = args
        self.path = Path(args.graph).resolve()
        self.plugins = [Path(folder).resolve() for folder in args.plugins]
        self.data_dir = resolve_data_dir(args.data_dir)
        self.config = engine_config(args, self.data_dir, cache=not args.no_cache)
        self.cache: ResultCache | None = open_cache(self.config)
        self.previews = previews_of(args)
        self.registry = self._discover()
        self.sessions: dict[tuple[str, ...], Session] = {}

    def _discover(self) -> Registry:
        from nodeforge.engine.registry import Registry

        registry = Registry.discover(self.plugins)
        for problem in registry.problems:
            print(f"nodeforge: plugin {problem.plugin} not loaded: {problem.reason}", file=sys.stderr)
        return registry

    def reload_plugins(self) -> None:
        self.registry = self._discover()

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        if self.cache is not None:
            self.cache.close()

    def run_once(self, cancel: threading.Event) -> RunRecord | None:
        """Run the graph as it is on disk now; None when it cannot run (the reason is printed)."""
        from nodeforge.engine.compiler import GraphEnv, compile_graph
        from nodeforge.engine.document import load_document
        from nodeforge.engine.errors import EngineError, GraphInputError, GraphValidationError
        from nodeforge.engine.inputs import parse_sets
        from nodeforge.engine.saved_graphs import GraphLibrary

        try:
            document = load_document(self.path)
            given = parse_sets(document, self.args.sets)
            env = GraphEnv(self.registry, GraphLibrary([self.path.parent, self.data_dir / "graphs"]))
            compiled = compile_graph(document, env)
            session = self._session(compiled)
            if session is None:
                return None
            run_id = uuid.uuid4().hex[:12]
            out_dir = Path(self.args.out) if self.args.out else Path("outputs") / run_id
            return self._execute(session, env, compiled, given, run_id, cancel, out_dir)
        except GraphValidationError as exc:
            print(f"{self.args.graph}: {len(exc.issues)} issue(s); waiting for the next change", file=sys.stderr)
            for issue in exc.issues:
                print(f"  {issue}", file=sys.stderr)
        except (GraphInputError, UsageError, EngineError) as exc:
            print(f"{self.args.graph}: {exc}; waiting for the next change", file=sys.stderr)
        return None

    def _session(self, compiled: CompiledGraph) -> Session | None:
        """The session for this graph's devices (``auto`` detects GPUs only for a graph with an accelerator
        node); None when the Ray cluster cannot be reached (the reason is printed)."""
        from nodeforge.engine.compiler import GraphEnv

        accelerated = any(node.spec.cls.accelerator for node in compiled.nodes.values())
        devices = self.config.device_names(accelerated)
        key = tuple(devices or ())
        if key not in self.sessions:
            session = open_for(self.config, GraphEnv(self.registry), cache=self.cache, devices=devices,
                               accelerated=accelerated)
            if session is None:
                return None
            self.sessions[key] = session
        return self.sessions[key]

    def _execute(self, session: Session, env: GraphEnv, compiled: CompiledGraph, given: dict[str, Any], run_id: str,
                 cancel: threading.Event, out_dir: Path) -> RunRecord:
        interactive = not self.args.json and sys.stdout.isatty()
        record = execute_with_progress(session, compiled, given, run_id, cancel, out_dir, env=env,
                                       interactive=interactive, previews=self.previews).record
        if self.args.json:
            print(json.dumps(record.to_json(), ensure_ascii=False), flush=True)
        else:
            print_summary(record)
        return record


def watch_command(args: argparse.Namespace) -> int:
    import watchfiles

    path = Path(args.graph)
    if not path.is_file():
        raise UsageError(f"graph file {args.graph} does not exist")
    for folder in args.plugins:
        if not Path(folder).is_dir():
            raise UsageError(f"--plugins {folder}: no such folder")
    session = WatchSession(args)
    stop = threading.Event()
    cancel = threading.Event()

    def interrupt(*_: Any) -> None:
        stop.set()
        cancel.set()

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        target = session.path
        seen = _version(target)
        session.run_once(cancel)

        def relevant(change: watchfiles.Change, changed: str) -> bool:
            candidate = Path(changed)
            return candidate == target or any(folder in candidate.parents for folder in session.plugins)

        print(f"watching {args.graph} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        # Each pass also compares the file with the version last run, so a save made before the watcher started
        # (during the first run) or between two passes is never lost.
        for changes in watchfiles.watch(target.parent, *session.plugins, watch_filter=relevant, stop_event=stop,
                                        recursive=False, debounce=150, step=50, raise_interrupt=False,
                                        yield_on_timeout=True, rust_timeout=500):
            if any(Path(changed) != target for _, changed in changes):
                session.reload_plugins()
            elif _version(target) == seen:
                continue
            if target.is_file():
                seen = _version(target)
                session.run_once(cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
        session.close()
    return EXIT_OK


def _version(path: Path) -> tuple[int, int, int] | None:
    """What identifies one saved version of a file: inode (an atomic save replaces it), size, modification time."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns
