"""The durable record of runs: SQLite (WAL) under the data dir holding runs, node states, events and artifacts.

Every write goes through one writer thread that commits in batches: a caller that must know its write is on disk
(a submission, a claim, a finished run) waits for the commit; events are handed over without waiting and
committed with the next batch, so a chatty node never waits on the database. Readers use their own connections
(WAL lets them read while the writer writes). ``synchronous=NORMAL`` survives a killed process; the run states
are what a restart recovers from. A write the disk refuses (full, failing) raises ``StorageFull``, which answers 507
wherever it reaches a route; the writer itself carries on, so writes succeed again once there is space.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.events import Event, RunFinished
from nodeforge.engine.record import RunRecord
from nodeforge.server.error_responses import ApiError
from nodeforge.server.idempotency import keyed_run
from nodeforge.server.run_rows import apply_event, dumps, read_run, summary, wire
from nodeforge.server.schemas import RunSummary, RunView
from nodeforge.server.store_schema import SCHEMA_VERSION, create_schema

FINISHED = ("succeeded", "failed", "cancelled", "interrupted")
_STOP = object()


class StoreError(Exception):
    """The database could not be opened or is of an unknown schema."""


class StorageFull(ApiError):
    """The disk refused a write of the run store (full, or failing). An error answer itself (507, retry later), so
    every route that writes tells the client what happened instead of answering 500."""

    def __init__(self, cause: sqlite3.Error) -> None:
        code = getattr(cause, "sqlite_errorcode", None)
        full = code & 0xFF == sqlite3.SQLITE_FULL if code is not None else "disk is full" in str(cause)
        self.reason = "its disk is full" if full else "its disk failed to write"
        super().__init__(507, f"the server cannot store anything now: {self.reason}; try again later",
                         headers={"Retry-After": "30"}, code="insufficient_storage")


def is_disk_failure(exc: BaseException) -> bool:
    """Whether a database error says the disk refused a write (full, an I/O error) rather than a bug."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)
    return any(text in str(exc) for text in ("disk is full", "disk I/O error"))


@dataclass(frozen=True, slots=True)
class NewRun:
    id: str
    graph: str
    document: dict[str, Any]
    inputs: dict[str, Any]
    nodes: dict[str, str]
    idempotency_key: str | None = None
    request: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    id: str
    graph: str
    document: dict[str, Any]
    inputs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Artifact:
    id: str
    run: str | None
    kind: str
    file: str
    media_type: str
    filename: str
    size: int


class RunStore:
    """Opens (creating or recovering) ``runs.sqlite`` and serialises every write through one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._ops: queue.SimpleQueue[Any] = queue.SimpleQueue()
        db = self._connect()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StoreError(f"{path} has schema version {version}; this server knows {SCHEMA_VERSION}")
        create_schema(db)
        self._writer_db = db
        self._thread = threading.Thread(target=self._write_loop, name="run-store-writer", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = sqlite3.Row
        return db

    def _reader(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    # The writer thread.
    def _write_loop(self) -> None:
        db = self._writer_db
        while True:
            batch = [self._ops.get()]
            while len(batch) < 2000:
                try:
                    batch.append(self._ops.get_nowait())
                except queue.Empty:
                    break
            stop = any(op is _STOP for op in batch)
            done: list[tuple[Future[Any] | None, Any, BaseException | None]] = []
            try:
                db.execute("BEGIN IMMEDIATE")
                for op in batch:
                    if op is not _STOP:
                        done.append(_run_op(db, *op))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                done = [(op[1], None, exc) for op in batch if op is not _STOP]
            for future, result, error in done:
                if future is None:
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)
            if stop:
                db.close()
                return

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn`` in the writer's transaction and wait until it is committed; StorageFull when the disk
        refused it."""
        future: Future[Any] = Future()
        self._ops.put((fn, future))
        try:
            return future.result()
        except sqlite3.Error as exc:
            if is_disk_failure(exc):
                raise StorageFull(exc) from exc
            raise

    def _send(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self._ops.put((fn, None))

    def barrier(self) -> None:
        """Return once everything handed to the writer before this call is committed (or refused by the disk:
        what was handed over is then settled either way, which is all a barrier is for)."""
        with contextlib.suppress(StorageFull):
            self._write(lambda db: None)

    def close(self) -> None:
        self._ops.put(_STOP)
        self._thread.join(timeout=30)

    # Runs.
    def recover(self, reason: str) -> list[str]:
        """Mark runs that were running when the last server stopped as ``interrupted`` (with an event saying
        why); queued runs stay queued. Returns the interrupted run ids."""

        def fn(db: sqlite3.Connection) -> list[str]:
            now = time.time()
            ids = [row[0] for row in db.execute("SELECT id FROM runs WHERE status = 'running' ORDER BY seq")]
            for run_id in ids:
                db.execute("UPDATE runs SET status = 'interrupted', error = ?, finished_at = ? WHERE id = ?",
                           (reason, now, run_id))
                db.execute("UPDATE nodes SET status = 'cancelled', error = ?, finished_at = "
                           "CASE WHEN status = 'running' THEN ? ELSE finished_at END "
                           "WHERE run = ? AND status IN ('pending', 'running')", (f"interrupted: {reason}", now,
                                                                                  run_id))
                seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE run = ?",
                                 (run_id,)).fetchone()[0]
                event = Event(run_id, seq, now, RunFinished(status="interrupted", error=reason))
                db.execute("INSERT INTO events (run, seq, data) VALUES (?, ?, ?)", (run_id, seq, wire(event)))
            return ids

        return self._write(fn)

    def last_event_id(self) -> int:
        row = self._reader().execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        return int(row[0])

    def keyed_run(self, key: str, request: str | None) -> str | None:
        """The run an Idempotency-Key made, if any; raises IdempotencyConflict when it made it for another
        request (runs stored before requests were remembered match any)."""
        return keyed_run(self._reader(), key, request)

    def create_run(self, run: NewRun, event_id: int, event: Event, queue_limit: int) -> tuple[str, bool]:
        """Insert a queued run with its pending nodes and its ``run.queued`` event; with an idempotency key already
        used for the same request, return that run instead. Returns (run id, created); raises IdempotencyConflict
        when the key was used for another request, QueueFull beyond ``queue_limit``."""

        def fn(db: sqlite3.Connection) -> tuple[str, bool]:
            earlier = keyed_run(db, run.idempotency_key, run.request) if run.idempotency_key is not None else None
            if earlier is not None:
                return earlier, False
            queued = db.execute("SELECT COUNT(*) FROM runs WHERE status = 'queued'").fetchone()[0]
            if queued >= queue_limit:
                raise QueueFull(f"the queue holds {queued} runs; try again later")
            db.execute("INSERT INTO runs (id, graph, document, inputs, status, idempotency_key, request, created_at) "
                       "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)", (run.id, run.graph, dumps(run.document),
                                                                   dumps(run.inputs), run.idempotency_key,
                                                                   run.request, event.at))
            db.executemany("INSERT INTO nodes (run, node, type, status) VALUES (?, ?, ?, 'pending')",
                           [(run.id, node, node_type) for node, node_type in run.nodes.items()])
            db.execute("INSERT INTO events (id, run, seq, data) VALUES (?, ?, ?, ?)",
                       (event_id, run.id, event.seq, wire(event)))
            return run.id, True

        return self._write(fn)

    def claim_next(self) -> ClaimedRun | None:
        """The oldest queued run, now marked running; None when the queue is empty."""

        def fn(db: sqlite3.Connection) -> ClaimedRun | None:
            row = db.execute("SELECT id, graph, document, inputs FROM runs WHERE status = 'queued' "
                             "ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE runs SET status = 'running', started_at = ? WHERE id = ?", (time.time(), row["id"]))
            return ClaimedRun(row["id"], row["graph"], json.loads(row["document"]), json.loads(row["inputs"]))

        return self._write(fn)

    def cancel_queued(self, run_id: str) -> bool:
        """Cancel a run that has not started; False when it is not queued (any more)."""

        def fn(db: sqlite3.Connection) -> bool:
            cursor = db.execute("UPDATE runs SET status = 'cancelled', error = 'cancelled before it started', "
                                "finished_at = ? WHERE id = ? AND status = 'queued'", (time.time(), run_id))
            if cursor.rowcount:
                db.execute("UPDATE nodes SET status = 'cancelled' WHERE run = ?", (run_id,))
            return bool(cursor.rowcount)

        return self._write(fn)

    def append_event(self, event_id: int, event: Event) -> None:
        """Store one event and apply the node state change it carries (not waited for)."""
        self._send(lambda db: apply_event(db, event_id, event))

    def finish_run(self, record: RunRecord, event_id: int, event: Event) -> None:
        """Store a run's final record (status, outputs, seeds, every node's state) with its ``run.finished`` event,
        in one transaction, and wait for the commit: a run is finished in the database exactly when its stream
        ends there."""
        nodes = [(n.status, n.device, n.started, n.finished, n.seconds, n.error, n.traceback,
                  dumps(n.details) if n.details else None, record.id, node_id) for node_id, n in record.nodes.items()]

        def fn(db: sqlite3.Connection) -> None:
            db.execute("UPDATE runs SET status = ?, error = ?, seeds = ?, outputs = ?, devices = ?, "
                       "shown_inputs = ?, started_at = COALESCE(started_at, ?), finished_at = ? WHERE id = ?",
                       (record.status, record.error, dumps(record.seeds), dumps(record.outputs),
                        dumps(record.devices), dumps(record.inputs), record.started, record.finished or time.time(),
                        record.id))
            db.executemany("UPDATE nodes SET status = ?, device = ?, started_at = ?, finished_at = ?, seconds = ?, "
                           "error = ?, traceback = ?, details = ? WHERE run = ? AND node = ?", nodes)
            db.execute("UPDATE nodes SET status = 'skipped', error = COALESCE(error, ?) "
                       "WHERE run = ? AND status IN ('pending', 'running')", (f"not run: {record.error}", record.id))
            db.execute("INSERT INTO events (id, run, seq, data) VALUES (?, ?, ?, ?)",
                       (event_id, record.id, event.seq, wire(event)))

        self._write(fn)

    def run_row(self, run_id: str) -> sqlite3.Row | None:
        return self._reader().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()

    def run(self, run_id: str) -> RunView | None:
        """A run's record as it was stored (its inputs as shown, media outputs as artifact URLs); None when
        unknown."""
        return read_run(self._reader(), run_id)

    def list_runs(self, status: str | None, limit: int, offset: int) -> tuple[list[RunSummary], int]:
        """Runs newest first, optionally of one status, and how many there are in all."""
        db = self._reader()
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        total = db.execute(f"SELECT COUNT(*) FROM runs {where}", args).fetchone()[0]
        rows = db.execute(f"SELECT id, graph, status, error, created_at, started_at, finished_at FROM runs {where} "
                          "ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [summary(row) for row in rows], int(total)

    def counts(self) -> dict[str, int]:
        rows = self._reader().execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {row[0]: int(row[1]) for row in rows}

    def run_events(self, run_id: str, after_seq: int) -> Iterator[dict[str, Any]]:
        """A run's stored events after ``after_seq``, in order (read in pages, so a long run streams)."""
        db = self._reader()
        while True:
            rows = db.execute("SELECT seq, data FROM events WHERE run = ? AND seq > ? ORDER BY seq LIMIT 1000",
                              (run_id, after_seq)).fetchall()
            for row in rows:
                yield json.loads(row["data"])
            if len(rows) < 1000:
                return
            after_seq = rows[-1]["seq"]

    def last_run_event(self, run_id: str) -> dict[str, Any] | None:
        """A run's last stored event: its ``run.finished`` once it has finished."""
        row = self._reader().execute("SELECT data FROM events WHERE run = ? ORDER BY seq DESC", (run_id,)).fetchone()
        return json.loads(row[0]) if row is not None else None

    def events_after(self, event_id: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        rows = self._reader().execute("SELECT id, data FROM events WHERE id > ? ORDER BY id LIMIT ?",
                                      (event_id, limit)).fetchall()
        return [(int(row["id"]), json.loads(row["data"])) for row in rows]

    # Artifacts.
    def add_artifacts(self, artifacts: list[Artifact], drop: Collection[str] = ()) -> None:
        """Insert ``artifacts`` and delete the records of the ids in ``drop`` (previews replaced), in one commit."""
        now = time.time()
        rows = [(a.id, a.run, a.kind, a.file, a.media_type, a.filename, a.size, now) for a in artifacts]

        def fn(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("DELETE FROM artifacts WHERE id = ?", [(artifact_id,) for artifact_id in drop])

        self._write(fn)

    def artifact(self, artifact_id: str) -> Artifact | None:
        row = self._reader().execute("SELECT id, run, kind, file, media_type, filename, size FROM artifacts "
                                     "WHERE id = ?", (artifact_id,)).fetchone()
        return Artifact(*row) if row is not None else None


def _run_op(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any],
            future: Future[Any] | None) -> tuple[Future[Any] | None, Any, BaseException | None]:
    """One write inside the batch's transaction, behind a savepoint so its failure undoes only itself."""
    db.execute("SAVEPOINT op")
    try:
        result = fn(db)
    except Exception as exc:
        db.execute("ROLLBACK TO op")
        db.execute("RELEASE op")
        return future, None, exc
    db.execute("RELEASE op")
    return future, result, None


class QueueFull(Exception):
    """More runs are queued than the server accepts."""
