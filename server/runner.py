"""The run queue's workers: claim the oldest queued run, execute it, store the record, then announce the end.

The record is the same whoever listens: outputs (cached ones included) come from the session's result, never from
what a listener saw. ``run.finished`` is held back until the record is committed, so a client that reacts to it
always reads the final state (and each node's last step preview: the others are dropped before). Cancellation uses
the run's cancel event; a run cancelled because the server is shutting down is recorded as ``interrupted``, as is
one that was running when the server was killed.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import TYPE_CHECKING, Any

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import EngineError, GraphValidationError
from nodeforge.engine.events import Event, RunFinished
from nodeforge.engine.previews import Previews
from nodeforge.engine.record import RunRecord
from nodeforge.server.events import run_event
from nodeforge.server.store import ClaimedRun

if TYPE_CHECKING:
    from nodeforge.server.runtime import Runtime

log = logging.getLogger("nodeforge.server")
SHUTDOWN_REASON = "the server shut down while the run was running"


class Runner:
    def __init__(self, runtime: Runtime, concurrency: int) -> None:
        self.runtime = runtime
        self.concurrency = concurrency
        self._pending = threading.Event()  # set when a run may be waiting to be claimed
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._cancels: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"runner-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        self._pending.set()

    def stop(self, grace: float) -> None:
        """Stop claiming, cancel what runs, and wait up to ``grace`` seconds for it to be recorded."""
        self._stopping.set()
        with self._lock:
            for cancel in self._cancels.values():
                cancel.set()
        self._pending.set()
        for thread in self._threads:
            thread.join(timeout=grace)

    def cancel_event(self, run_id: str) -> threading.Event:
        with self._lock:
            return self._cancels.setdefault(run_id, threading.Event())

    def active(self) -> list[str]:
        with self._lock:
            return list(self._cancels)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._pending.clear()  # before claiming: a run queued from here on sets it again, so none waits
            try:
                claimed = self.runtime.store.claim_next()
            except Exception:
                log.exception("claiming a run failed")
                claimed = None
            if claimed is None:
                self._pending.wait(timeout=1.0)
                continue
            try:
                self._execute(claimed)
            except Exception:
                log.exception("recording run %s failed; it stays running until the next start interrupts it",
                              claimed.id)
            finally:
                with self._lock:
                    self._cancels.pop(claimed.id, None)

    def _execute(self, claimed: ClaimedRun) -> None:
        runtime = self.runtime
        cancel = self.cancel_event(claimed.id)
        held: list[dict[str, Any]] = []
        last_seq = [0]

        def listen(event: Event) -> None:
            data = event.to_dict()
            last_seq[0] = max(last_seq[0], event.seq)
            if event.kind == "run.finished":
                held.append(data)
            else:
                runtime.events.record(data)

        method = runtime.settings.preview_method
        sink = runtime.artifacts.previews(claimed.id)
        try:
            graph = runtime.compiled.take(claimed.id) or parse_document(claimed.document)
            result = runtime.session().run(
                graph, claimed.inputs, env=runtime.env, run_id=claimed.id, listener=listen, cancel=cancel,
                out_dir=runtime.artifacts.run_folder(claimed.id), media_resolver=runtime.artifacts.resolve_input,
                previews=Previews(sink, method) if method != "off" else None)
            record = result.record
            record.outputs = runtime.artifacts.adopt_outputs(claimed.id, record.outputs)
        except GraphValidationError as exc:
            record = _failed(claimed, "; ".join(str(issue) for issue in exc.issues))
        except EngineError as exc:
            record = _failed(claimed, str(exc))
        except Exception as exc:
            log.error("run %s failed inside the server:\n%s", claimed.id, traceback.format_exc())
            record = _failed(claimed, f"internal error: {type(exc).__name__}: {exc}")
        sink.settle()  # before the record: a client reacting to run.finished finds each node's last preview
        if self._stopping.is_set() and record.status == "cancelled":
            record.status, record.error = "interrupted", SHUTDOWN_REASON
        runtime.store.finish_run(record)
        finished = held[0] if held else run_event(claimed.id, last_seq[0] + 1, RunFinished(status=record.status))
        finished.update(status=record.status)
        if record.error:
            finished["error"] = record.error
        runtime.events.record(finished)


def _failed(claimed: ClaimedRun, error: str) -> RunRecord:
    return RunRecord(id=claimed.id, graph=claimed.graph, status="failed", inputs=claimed.inputs, error=error)
