"""The run queue's workers: claim the oldest queued run, execute it, store the record, then announce the end.

The record is the same whoever listens: outputs (cached ones included) come from the session's result, never from
what a listener saw. ``run.finished`` is stored with the record, in one transaction, and published after it, so a
client that reacts to it always reads the final state (and each node's last step preview: the others are dropped
before). Cancellation uses the run's cancel event; a run cancelled because the server is shutting down is recorded
as ``interrupted``, as is one that was running when the server was killed.

A run always ends, also when the disk does not let it: outputs that cannot be stored fail the run with the reason;
a record that cannot be stored is replaced by its failure alone; and when even that is refused, the end is
published to listeners, shown by the API from memory and stored as soon as the disk takes it.
"""

from __future__ import annotations

import logging
import shutil
import threading
import traceback
from dataclasses import replace
from typing import TYPE_CHECKING

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import EngineError, GraphValidationError, StorageError
from nodeforge.engine.events import Event, RunFinished
from nodeforge.engine.previews import Previews
from nodeforge.engine.record import RunRecord
from nodeforge.server.event_log import run_event
from nodeforge.server.run_store import ClaimedRun, StorageFull

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
        self._unsettled: dict[str, tuple[RunRecord, int, Event]] = {}
        self._disk_refused = False

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

    def unsettled(self, run_id: str) -> tuple[RunRecord, Event] | None:
        """The end of a run that the disk has not let be stored yet (its record and ``run.finished`` event)."""
        with self._lock:
            found = self._unsettled.get(run_id)
        return (found[0], found[2]) if found is not None else None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._pending.clear()  # before claiming: a run queued from here on sets it again, so none waits
            self._store_unsettled()
            try:
                claimed = self.runtime.store.claim_next()
                self._disk_refused = False
            except StorageFull as exc:
                if not self._disk_refused:
                    log.warning("cannot claim a queued run: %s", exc)
                self._disk_refused = True
                claimed = None
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
        held: list[Event] = []
        last_seq = [0]

        def listen(event: Event) -> None:
            last_seq[0] = max(last_seq[0], event.seq)
            match event.data:
                case RunFinished():  # stored with the record, once it is final
                    held.append(event)
                case _:
                    runtime.events.record(event)

        method = runtime.settings.preview_method
        sink = runtime.artifacts.previews(claimed.id)
        try:
            graph = runtime.compiled.take(claimed.id) or parse_document(claimed.document)
            result = runtime.session().run(
                graph, claimed.inputs, env=runtime.env, run_id=claimed.id, listener=listen, cancel=cancel,
                out_dir=runtime.artifacts.run_folder(claimed.id), media_resolver=runtime.artifacts.resolve_input,
                previews=Previews(sink, method) if method != "off" else None)
            record = result.record
        except GraphValidationError as exc:
            record = _failed(claimed, "; ".join(str(issue) for issue in exc.issues))
        except EngineError as exc:
            record = _failed(claimed, str(exc))
        except Exception as exc:
            record = _failed(claimed, _reason(claimed.id, exc))
        try:
            record.outputs = runtime.artifacts.adopt_outputs(claimed.id, record.outputs)
        except Exception as exc:
            record.status, record.error = "failed", f"the run's outputs could not be stored: {_reason(claimed.id, exc)}"
            record.outputs = {}
        if record.status != "succeeded":
            shutil.rmtree(runtime.artifacts.run_folder(claimed.id), ignore_errors=True)  # partial files free space
        try:
            sink.settle()  # before the record: a client reacting to run.finished finds each node's last preview
        except Exception as exc:
            log.warning("run %s: its older step previews could not be dropped: %s", claimed.id, exc)
        if self._stopping.is_set() and record.status == "cancelled":
            record.status, record.error = "interrupted", SHUTDOWN_REASON
        end = RunFinished(status=record.status, error=record.error or None)  # the record's last word on how it ended
        finished = replace(held[0], data=end) if held else run_event(claimed.id, last_seq[0] + 1, end)
        self._end(claimed, record, finished)

    def _end(self, claimed: ClaimedRun, record: RunRecord, finished: Event) -> None:
        """Store the run's record with its ``run.finished`` and publish that; when the disk refuses the record,
        store the run's failure alone; when it refuses that too, publish the end and keep it to store later."""
        events = self.runtime.events
        event_id, finished = events.number(finished)
        events.redact.record(record)
        try:
            self.runtime.store.finish_run(record, event_id, finished)
        except Exception as exc:
            log.error("run %s: its record could not be stored (%s); storing its failure alone", claimed.id, exc)
            record = events.redact.record(_failed(claimed, f"the run's record could not be stored: "
                                                           f"{_reason(claimed.id, exc)}"))
            finished = events.redact.event(replace(finished, data=RunFinished(status=record.status,
                                                                              error=record.error)))
            try:
                self.runtime.store.finish_run(record, event_id, finished)
            except Exception as again:
                log.error("run %s: its failure could not be stored either (%s); it is kept until the disk takes "
                          "it", claimed.id, again)
                with self._lock:
                    self._unsettled[claimed.id] = (record, event_id, finished)
        events.publish(event_id, finished)

    def _store_unsettled(self) -> None:
        """Store the ends the disk refused before, oldest first, until it refuses again."""
        with self._lock:
            waiting = list(self._unsettled.items())
        for run_id, (record, event_id, finished) in waiting:
            try:
                self.runtime.store.finish_run(record, event_id, finished)
            except Exception:
                return
            with self._lock:
                del self._unsettled[run_id]
            log.warning("run %s: its failure is stored now", run_id)


def _reason(run_id: str, exc: Exception) -> str:
    """What to record when a run fails outside its nodes: the disk's reason, or an internal error (logged with
    its traceback for the operator)."""
    if isinstance(exc, StorageFull):
        return f"the server's run store refused the write: {exc.reason}"
    if StorageError.is_disk(exc):
        return f"the server {StorageError.of(exc)}"
    log.error("run %s failed inside the server:\n%s", run_id, traceback.format_exc())
    return f"internal error: {type(exc).__name__}: {exc}"


def _failed(claimed: ClaimedRun, error: str) -> RunRecord:
    return RunRecord(id=claimed.id, graph=claimed.graph, status="failed", inputs=claimed.inputs, error=error)
