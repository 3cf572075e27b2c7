"""The result cache: a memory LRU with a byte budget in front of a disk tier shared by every graph and process.

Disk layout under ``<data dir>/cache``: ``index.sqlite`` (WAL) holds one row per key with the JSON payload and
checksums; tensors live in ``blobs/<kk>/<key>.safetensors``. Small entries are batched and committed together
(at the end of a run, or every ``FLUSH_SECONDS`` while a run goes on), never an fsync per node. Every read
verifies sha256 checksums; a torn or corrupt entry is deleted and reported as a miss, so it is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.codec import decode, encode
from nodeforge.engine.errors import CodecError
from nodeforge.engine.values import move_value, value_nbytes

log = logging.getLogger("nodeforge.engine")

Outputs = dict[str, Any]
_JSON = json.JSONEncoder(separators=(",", ":"))
_STRING = json.encoder.encode_basestring_ascii
_FLOAT = _JSON.iterencode  # only for the rare non-finite float
FLUSH_SECONDS = 0.05
DEFAULT_MEMORY_BUDGET = 1 << 30
BATCH_ROWS = 512
"""Staged entries that make the writer commit at once rather than after ``FLUSH_SECONDS``."""
_ROWS_PER_INSERT = (256, 64, 16, 4, 1)
_INSERTS = {size: "INSERT OR REPLACE INTO entries VALUES " + ",".join(("(?,?,?,?,?,?,?)",) * size)
            for size in _ROWS_PER_INSERT}


def _outputs_nbytes(outputs: Outputs) -> int:
    """``value_nbytes(outputs)``, with text and numbers counted here rather than by a call each."""
    size = 64
    for name, value in outputs.items():
        kind = type(value)
        size += len(name) + 49 + (len(value) + 49 if kind is str else 32 if kind in _SCALARS else value_nbytes(value))
    return size


_SCALARS = frozenset({int, float, bool, type(None)})


def _plain_payload(outputs: Outputs) -> bytes | None:
    """The JSON payload of outputs holding only text, numbers, booleans and None (what ``_JSON.encode`` writes),
    built without the encoder's per-call set-up; None when some value needs the codec (media, lists, dicts)."""
    parts = []
    for name, value in outputs.items():
        kind = type(value)
        if kind is str:
            text = _STRING(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = int.__repr__(value)
        elif value is None:
            text = "null"
        elif kind is float:
            text = float.__repr__(value) if value - value == 0 else "".join(_FLOAT(value))
        else:
            return None
        parts.append(f"{_STRING(name)}:{text}")
    return f"{{{','.join(parts)}}}".encode()


@dataclass(slots=True)
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    corrupt: int = 0
    writes: int = 0


class MemoryTier:
    """LRU of outputs by key, evicting the least recently used entries beyond ``budget`` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[str, tuple[Outputs, int]] = OrderedDict()

    def get(self, key: str) -> Outputs | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, outputs: Outputs, nbytes: int | None = None) -> None:
        size = _outputs_nbytes(outputs) if nbytes is None else nbytes
        if size > self.budget:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self._entries[key] = (outputs, size)
        self.used += size
        while self.used > self.budget:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.used -= evicted

    def replace(self, key: str, outputs: Outputs) -> None:
        """Swap an entry's value in place (a result moved off its device) without touching its recency."""
        if key in self._entries:
            self._entries[key] = (outputs, self._entries[key][1])

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


Row = tuple[str, bytes, str, str | None, str | None, int, float]


class DiskTier:
    """SQLite index plus safetensors blobs; safe to share between processes.

    Entries are encoded on the caller's thread and staged without a lock (a deque append and a dict store are
    atomic); a writer thread commits them in batches with its own connection, and SQLite releases the GIL while it
    writes, so node execution never waits on the disk. ``flush`` waits for the writer to drain.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._db = self._connect()
        self._db.execute("""CREATE TABLE IF NOT EXISTS entries (
            key TEXT PRIMARY KEY, payload BLOB NOT NULL, checksum TEXT NOT NULL,
            blob TEXT, blob_checksum TEXT, nbytes INTEGER NOT NULL, created REAL NOT NULL) WITHOUT ROWID""")
        self._read_lock = threading.Lock()
        self._queue: deque[Row] = deque()
        self._unflushed: dict[str, Row] = {}
        self._wake = threading.Event()
        self._drained = threading.Condition()
        self._in_flight = 0
        self._hurry = threading.Event()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="nodeforge-cache-writer", daemon=True)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / "index.sqlite", check_same_thread=False, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def get(self, key: str) -> tuple[Outputs | None, bool]:
        """(outputs, corrupt): outputs is None on a miss; corrupt is True when a bad entry was found and removed."""
        row = self._unflushed.get(key)
        if row is None:
            with self._read_lock:
                row = self._db.execute("SELECT key, payload, checksum, blob, blob_checksum, nbytes, created "
                                       "FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None, False
        _, payload, checksum, blob, blob_checksum, _, _ = row
        try:
            if hashlib.sha256(payload).hexdigest() != checksum:
                raise CodecError("payload checksum mismatch")
            tensors: dict[str, Any] = {}
            if blob:
                data = (self.blobs / blob).read_bytes()
                if hashlib.sha256(data).hexdigest() != blob_checksum:
                    raise CodecError("tensor file checksum mismatch")
                from safetensors.torch import load

                tensors = load(data)
            return decode(json.loads(payload), tensors), False
        except (CodecError, OSError, ValueError):
            self._remove(key, blob)
            return None, True

    def present(self, keys: list[str]) -> set[str]:
        """Which keys have an entry (unverified: ``get`` checks the checksums), in a few queries."""
        found = {key for key in keys if key in self._unflushed}
        with self._read_lock:
            for start in range(0, len(keys), 900):
                chunk = keys[start:start + 900]
                marks = ",".join("?" * len(chunk))
                found.update(row[0] for row in
                             self._db.execute(f"SELECT key FROM entries WHERE key IN ({marks})", chunk))
        return found

    def put(self, key: str, outputs: Outputs) -> None:
        tensors: dict[str, Any] = {}
        payload = _plain_payload(outputs)
        if payload is None:
            payload = _JSON.encode(encode(outputs, tensors)).encode()
        blob = blob_checksum = None
        nbytes = len(payload)
        if tensors:
            from safetensors.torch import save

            data = save(tensors)
            blob = f"{key[:2]}/{key}.safetensors"
            blob_checksum = hashlib.sha256(data).hexdigest()
            _write_atomically(self.blobs / blob, data)
            nbytes += len(data)
        row = (key, payload, hashlib.sha256(payload).hexdigest(), blob, blob_checksum, nbytes, time.time())
        self._unflushed[key] = row
        queue = self._queue
        queue.append(row)
        if not self._wake.is_set():
            self._wake.set()
        elif len(queue) >= BATCH_ROWS and not self._hurry.is_set():
            self._hurry.set()  # a batch is ready: commit it now (SQLite works with the GIL released) than at the end

    def _write_loop(self) -> None:
        db = self._connect()
        try:
            while not (self._closed and not self._queue):
                self._wake.wait()
                if not self._closed:
                    self._hurry.wait(FLUSH_SECONDS)
                self._hurry.clear()  # flush sets it again while it waits; a full batch sets it again
                self._wake.clear()
                with self._drained:
                    self._in_flight += 1
                rows: list[Row] = []
                while self._queue:
                    rows.append(self._queue.popleft())
                try:
                    if rows:
                        self._commit(db, rows)
                except sqlite3.Error as exc:  # a full or failing disk: these entries are lost, the writer goes on
                    log.warning("%d result cache entries were not stored: %s", len(rows), exc)
                finally:
                    for row in rows:
                        if self._unflushed.get(row[0]) is row:
                            del self._unflushed[row[0]]
                    with self._drained:
                        self._in_flight -= 1
                        self._drained.notify_all()
        finally:
            db.close()

    @staticmethod
    def _commit(db: sqlite3.Connection, rows: list[Row]) -> None:
        """One transaction; rows go in as multi-row INSERTs, so SQLite's B-tree work runs in a few statements with
        the GIL released instead of one statement (and one GIL hand-off with the node workers) per row. Statements
        hold 256, 64, 16, 4 or 1 rows, so the few statement texts are parsed once and then come from the cache."""
        most = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 7
        sizes = [size for size in _ROWS_PER_INSERT if size <= most] or [1]
        db.execute("BEGIN IMMEDIATE")
        try:
            start = 0
            while start < len(rows):
                size = next(size for size in sizes if size <= len(rows) - start)
                chunk = rows[start:start + size]
                start += size
                db.execute(_INSERTS[size], [value for row in chunk for value in row])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def flush(self) -> None:
        """Wait until every staged entry is committed."""
        with self._drained:
            while (self._queue or self._in_flight) and self._writer.is_alive():
                self._hurry.set()
                self._wake.set()
                self._drained.wait(0.5)
            self._hurry.clear()

    def _remove(self, key: str, blob: str | None) -> None:
        self._unflushed.pop(key, None)
        with self._read_lock:
            self._db.execute("DELETE FROM entries WHERE key = ?", (key,))
        if blob:
            (self.blobs / blob).unlink(missing_ok=True)

    def info(self) -> dict[str, Any]:
        self.flush()
        with self._read_lock:
            count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM entries").fetchone()
        return {"path": str(self.root), "entries": count, "bytes": total}

    def clear(self) -> None:
        self.flush()
        with self._read_lock:
            self._db.execute("DELETE FROM entries")
            shutil.rmtree(self.blobs, ignore_errors=True)
            self.blobs.mkdir(parents=True, exist_ok=True)
            self._db.execute("VACUUM")

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._hurry.set()
        self._wake.set()
        self._writer.join()
        self._db.close()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a disk that filled keeps no half-written file
        raise


class ResultCache:
    """The memory tier in front of the disk tier. ``root`` None gives a memory-only cache."""

    def __init__(self, root: Path | None, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.memory = MemoryTier(memory_budget)
        self.disk = DiskTier(root) if root is not None else None
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def get(self, key: str) -> Outputs | None:
        with self._lock:
            outputs = self.memory.get(key)
        if outputs is not None:
            self.stats.memory_hits += 1
            return outputs
        if self.disk is not None:
            outputs, corrupt = self.disk.get(key)
            self.stats.corrupt += corrupt
            if outputs is not None:
                self.stats.disk_hits += 1
                with self._lock:
                    self.memory.put(key, outputs)
                return outputs
        self.stats.misses += 1
        return None

    def present(self, keys: list[str]) -> set[str]:
        """The subset of ``keys`` that either tier holds, for planning a run without one lookup per node."""
        with self._lock:
            found = {key for key in keys if key in self.memory}
        if self.disk is not None:
            found |= self.disk.present([key for key in keys if key not in found])
        return found

    def put(self, key: str, outputs: Outputs, nbytes: int | None = None) -> None:
        """Keep ``outputs`` under ``key`` in both tiers; ``nbytes``, when the caller measured them, is what they
        hold in memory."""
        with self._lock:
            self.memory.put(key, outputs, nbytes)
            self.stats.writes += 1
        if self.disk is not None:
            self.disk.put(key, outputs)

    def park(self, key: str, device: str) -> None:
        """Move a memory-tier entry's tensors to ``device`` (CPU RAM), freeing the accelerator it was on."""
        with self._lock:
            outputs = self.memory.get(key)
            if outputs is not None:
                self.memory.replace(key, move_value(outputs, device))

    def flush(self) -> None:
        if self.disk is not None:
            self.disk.flush()

    def info(self) -> dict[str, Any]:
        disk = self.disk.info() if self.disk is not None else {"path": None, "entries": 0, "bytes": 0}
        with self._lock:
            return {**disk, "memory_entries": len(self.memory), "memory_bytes": self.memory.used,
                    "memory_budget": self.memory.budget}

    def clear(self) -> None:
        with self._lock:
            self.memory.clear()
        if self.disk is not None:
            self.disk.clear()

    def close(self) -> None:
        if self.disk is not None:
            self.disk.close()
