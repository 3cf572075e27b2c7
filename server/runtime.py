"""Everything one server holds while it runs: the stores, the node registry, the engine session, the run queue's workers
and the file watcher. The app creates one at start-up (its lifespan) and closes it at shutdown.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from nodeforge.engine.compiler import CompiledGraph, GraphEnv, compile_graph
from nodeforge.engine.config import result_cache
from nodeforge.engine.devices import detect_devices
from nodeforge.engine.document import GraphDocument, parse_document
from nodeforge.engine.errors import EngineError, GraphValidationError, Issue, NodeError
from nodeforge.engine.events import RunFinished, RunQueued
from nodeforge.engine.files import FileAccess
from nodeforge.engine.inputs import input_issues
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session
from nodeforge.engine.sweep import expand_sweep, sweep_cells
from nodeforge.server.artifact_store import ArtifactStore
from nodeforge.server.chat import ChatBackend, LocalLLMBackend
from nodeforge.server.event_hub import EventHub
from nodeforge.server.event_log import EventLog, run_event
from nodeforge.server.idempotency import fingerprint
from nodeforge.server.library import GraphStore, check_name
from nodeforge.server.redact import server_redactor
from nodeforge.server.reload import Reloader
from nodeforge.server.run_store import NewRun, RunStore
from nodeforge.server.runner import Runner
from nodeforge.server.schemas import RunView
from nodeforge.server.settings import Settings

log = logging.getLogger("nodeforge.server")
RECOVERY_REASON = "the server stopped while the run was running (crash or kill)"


class DataDirBusy(RuntimeError):
    """Another server holds the data dir."""


class Invalid(Exception):
    """A submission or graph with issues: every one of them, each naming node, input, code and reason."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__(f"{len(issues)} issue(s)")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings = settings.resolved()
        data_dir = settings.data_dir
        self.engine = settings.engine_config()
        fixed_devices = None if self.engine.devices == "auto" else self.engine.device_names()
        self._lock_fd = _lock_data_dir(data_dir / "server.lock")
        try:
            self.store = RunStore(data_dir / "runs.sqlite")
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.started_at = time.time()
        interrupted = self.store.recover(RECOVERY_REASON)
        if interrupted:
            log.warning("%d run(s) were running when the server last stopped; marked interrupted: %s",
                        len(interrupted), ", ".join(interrupted))
        self.redact = server_redactor(settings)  # built once: everything a client reads goes through it
        self.hub = EventHub()
        self.events = EventLog(self.store, self.hub, self.redact)
        self.graphs = GraphStore(data_dir / "graphs", settings.examples_dir)
        for folder in ("inputs", "models", "outputs"):
            (data_dir / folder).mkdir(exist_ok=True)
        self.files = FileAccess(settings.file_policy, data_dir, tuple(self.graphs.folders()), settings.limits)
        self.artifacts = ArtifactStore(data_dir, self.store, self.files)
        self.cache = result_cache(data_dir)
        self.registry = self._discover()
        self.compiled = CompiledRuns()
        self._devices: list[str] | None = fixed_devices
        self._session: Session | None = None
        self._backend: Any = None
        self._backend_error: str | None = None
        self._devices_ready = threading.Event()
        self.runner = Runner(self, settings.concurrency)
        self.reloader: Reloader | None = None
        self.chat: ChatBackend = LocalLLMBackend(self)

    def start(self) -> None:
        threading.Thread(target=self._detect_devices, name="devices", daemon=True).start()
        self.runner.start()
        if self.settings.watch:
            self.reloader = Reloader(self)
            self.reloader.start()

    def close(self) -> None:
        if self.reloader is not None:
            self.reloader.stop()
        self.runner.stop(self.settings.shutdown_grace_seconds)
        if self._session is not None:
            self._session.close()
        self.hub.close()
        self.store.close()
        self.cache.close()
        os.close(self._lock_fd)

    # Nodes, devices, the session.
    def _discover(self) -> Registry:
        """The node registry with the plugins; each plugin that cannot be loaded is logged for the operator (at
        start and on every reload), as health and ``/api/nodes`` report it to clients."""
        registry = Registry.discover(list(self.settings.plugins))
        for problem in registry.problems:
            log.warning("plugin %s not loaded: %s", problem.plugin, problem.reason)
        return registry

    def plugin_problems(self) -> list[dict[str, str]]:
        """The plugins that could not be loaded, as clients see them (their folders redacted)."""
        return [{key: self.redact(value) for key, value in problem.to_dict().items()}
                for problem in self.registry.problems]

    def reload_plugins(self) -> Registry:
        """Import the plugin folders again; a broken plugin is reported (health, /api/nodes, the log), never
        fatal."""
        self.registry = self._discover()
        self.compiled.clear()
        self.events.announce({"kind": "plugins.reloaded", "nodes": len(self.registry),
                              "problems": self.plugin_problems()})
        return self.registry

    @property
    def env(self) -> GraphEnv:
        """Validation's view: the node types, the saved graphs, and the path policy every literal path meets."""
        return GraphEnv(self.registry, self.graphs.library, files=self.files)

    def _detect_devices(self) -> None:
        """``auto`` imports torch to look for GPUs, which takes seconds: in the background, so the API answers
        at once; a run waits for it only if it starts before detection is done. With ``--backend ray`` the
        session connects to the cluster and starts its device workers instead. When the session cannot open,
        the reason is kept for every run."""
        ray = self.engine.backend == "ray"
        if not ray and self._devices is None:
            try:
                self._devices = detect_devices()
            except Exception as exc:
                log.warning("device detection failed (%s: %s); running on the CPU", type(exc).__name__, exc)
                self._devices = ["cpu"]
        try:
            self._session = Session.open(self.engine, self.env, cache=self.cache, devices=self._devices)
        except Exception as exc:
            what = "the Ray backend could not start" if ray else "the devices could not be set up"
            self._backend_error = f"{what}: {exc}"
            log.error("%s", self._backend_error)
            self._devices = [] if ray else self._devices
        else:
            self._backend = self._session.backend if ray else None
        gc.freeze()  # torch's modules and the app live as long as the server: full collections skip them
        self._devices_ready.set()

    @property
    def devices(self) -> list[str] | None:
        return self._backend.devices if self._backend is not None else self._devices

    def session(self) -> Session:
        """The one engine session every run of this server goes through: its device slots hold across runs
        (one accelerator node per device, however many runs at once), as do the resident models and the
        learned estimates. Waits for device detection; raises when the Ray backend could not start."""
        self._devices_ready.wait()
        if self._session is None:
            raise EngineError(self._backend_error or "the engine session is not ready")
        return self._session

    # Graph documents.
    def check_document(self, data: dict[str, Any], saved_as: str | None = None) -> CompiledGraph:
        """Parse, validate and compile a raw document (once: a submitted run executes this compiled form);
        raises Invalid with every issue (literal paths outside the allowed folders included: the compile pass
        of ``engine.declared_checks``). ``saved_as`` is the saved graph's name the document is,
        or is about to be: graph.call then finds this document under it, so calls that come back to it are an
        issue."""
        try:
            document = parse_document(data)
        except GraphValidationError as exc:
            raise Invalid(exc.issues) from None
        env = self.env if saved_as is None else GraphEnv(
            self.registry, self.graphs.library.with_document(saved_as, document), (saved_as,), self.files)
        try:
            return compile_graph(document, env)
        except GraphValidationError as exc:
            raise Invalid(exc.issues) from None

    def with_versions(self, document: GraphDocument) -> GraphDocument:
        """The document with every node's version written in (the installed one where it had none), as a saved
        graph is stored: it then keeps meaning what it meant when a node's major version changes."""
        registry = self.registry
        nodes = {node_id: node if node.version else node.model_copy(update={"version": registry.get(node.type).version})
                 for node_id, node in document.nodes.items()}
        return document.model_copy(update={"nodes": nodes})

    # Runs.
    def submit(self, graph: str | dict[str, Any], inputs: dict[str, Any],
               idempotency_key: str | None = None, sweep: dict[str, Any] | None = None) -> tuple[str, bool]:
        """Validate and queue a run; returns (run id, created). ``sweep`` ({"axes", "mode"}) runs the graph over
        its cells as one combined graph (``engine.sweep``). Raises Invalid, GraphMissing/BadName, or
        IdempotencyConflict when the key was used for another request (the graph and inputs as given). A retry
        is answered from the key before anything is validated again."""
        request = fingerprint({"graph": graph, "inputs": inputs, **({"sweep": sweep} if sweep else {})}) \
            if idempotency_key is not None else None
        earlier = self.store.keyed_run(idempotency_key, request) if idempotency_key is not None else None
        if earlier is not None:
            return earlier, False
        if isinstance(graph, str):
            data, _ = self.graphs.read(check_name(graph))
            data = {**data, "name": graph}
        else:
            data = graph
        if sweep is not None:
            data, inputs = swept(data, inputs, sweep)
        compiled = self.check_document(data, graph if isinstance(graph, str) and sweep is None else None)
        document = compiled.document
        issues = input_issues(document, inputs, self.artifacts.media_problem)
        if issues:
            raise Invalid(issues)
        run_id = uuid.uuid4().hex[:16]
        event = run_event(run_id, 0, RunQueued())
        event_id = self.events.reserve()
        nodes = {node_id: node.type for node_id, node in document.nodes.items()}
        new = NewRun(run_id, document.name or "inline", document.to_json(), inputs, nodes, idempotency_key, request)
        run_id, created = self.store.create_run(new, event_id, event, self.settings.queue_limit)
        if created:
            self.compiled.keep(run_id, compiled)
            self.hub.publish(run_id, (event_id, event))
            self.runner.wake()
        return run_id, created

    def cancel(self, run_id: str) -> tuple[str, bool] | None:
        """Cancel a queued or running run: (its status now, whether this call cancelled it); None when unknown.
        A running run answers "cancelling" and stops at its next node boundary or progress step."""
        if self.store.cancel_queued(run_id):
            cancelled = RunFinished(status="cancelled", error="cancelled before it started")
            self.events.record(run_event(run_id, 1, cancelled))
            return "cancelled", True
        row = self.store.run_row(run_id)
        if row is None:
            return None
        ended = self.runner.unsettled(run_id)
        if ended is not None:
            return ended[0].status, False
        if row["status"] == "running":
            self.runner.cancel_event(run_id).set()
            return "cancelling", True
        return str(row["status"]), False

    def run_view(self, run_id: str) -> RunView | None:
        """The run record as the API shows it (design.md section 6), media outputs as artifact URLs."""
        view = self.store.run(run_id)
        ended = self.runner.unsettled(run_id)
        if view is not None and ended is not None:  # it ended, but the disk has not let its end be stored yet
            view.status, view.error, view.finished = ended[0].status, ended[0].error, ended[1].at
        return view

    def health(self) -> dict[str, Any]:
        from nodeforge.engine import __version__

        counts = self.store.counts()
        return {"status": "ok", "version": __version__, "devices": self.devices,
                "queue": {"queued": counts.get("queued", 0), "running": counts.get("running", 0)},
                "nodes": len(self.registry), "problems": self.plugin_problems(),
                "uptime_seconds": round(time.time() - self.started_at, 3), "listeners": self.hub.listeners()}


def swept(data: dict[str, Any], inputs: dict[str, Any], sweep: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                     dict[str, Any]]:
    """The combined graph of a sweep and its inputs (the cells' values, plus the given inputs it still takes);
    Invalid with the issue on ``sweep`` when the axes do not fit the graph."""
    try:
        combined = expand_sweep(parse_document(data), sweep_cells(sweep["axes"], sweep["mode"]))
    except GraphValidationError as exc:
        raise Invalid(exc.issues) from None
    except NodeError as exc:
        raise Invalid([Issue(None, "sweep", "invalid_sweep", f"{exc.input}: {exc}")]) from None
    kept = {name: value for name, value in inputs.items() if name in combined.document.inputs}
    return combined.document.to_json(), {**kept, **combined.inputs}


class CompiledRuns:
    """Queued runs' graphs as compiled at submission, so a run is validated once; the last few only (a run whose
    entry is gone, or that was queued before a restart, is compiled again from its stored document)."""

    LIMIT = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._graphs: OrderedDict[str, CompiledGraph] = OrderedDict()

    def keep(self, run_id: str, compiled: CompiledGraph) -> None:
        with self._lock:
            self._graphs[run_id] = compiled
            while len(self._graphs) > self.LIMIT:
                self._graphs.popitem(last=False)

    def take(self, run_id: str) -> CompiledGraph | None:
        with self._lock:
            return self._graphs.pop(run_id, None)

    def clear(self) -> None:
        """Forget every compiled graph: the node types they were compiled against were reloaded."""
        with self._lock:
            self._graphs.clear()


def probe_data_dir(data_dir: Path) -> None:
    """Raise DataDirBusy when another server holds the data dir (checked before the server starts)."""
    os.close(_lock_data_dir(data_dir / "server.lock"))


def _lock_data_dir(path: Path) -> int:
    """Hold an exclusive lock on the data dir for the process's lifetime (released by the OS on a kill)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise DataDirBusy(f"another nodeforge server is using the data dir {path.parent}") from None
    return fd
