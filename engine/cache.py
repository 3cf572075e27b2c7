"""The result cache: a memory LRU with a byte budget in front of a disk tier shared by every graph and process.

Disk layout under ``<data dir>/cache``: ``index.sqlite`` (WAL) holds one row per key with the JSON payload and
checksums; tensors live in ``blobs/<kk>/<key>.safetensors``. Small entries are batched and committed together
(at the end of a run, or after ``FLUSH_EVERY`` entries / ``FLUSH_SECONDS``), never an fsync per node. Every read
verifies sha256 checksums; a torn or corrupt entry is deleted and reported as a miss, so it is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.codec import CodecError, decode, encode
from engine.values import value_nbytes

Outputs = dict[str, Any]
FLUSH_EVERY = 512
FLUSH_SECONDS = 0.05
DEFAULT_MEMORY_BUDGET = 1 << 30


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

    def put(self, key: str, outputs: Outputs) -> None:
        size = value_nbytes(outputs)
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

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0

    def __len__(self) -> int:
        return len(self._entries)


class DiskTier:
    """SQLite index plus safetensors blobs; safe to share between processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / "index.sqlite", check_same_thread=False, timeout=30,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS entries (
            key TEXT PRIMARY KEY, payload BLOB NOT NULL, checksum TEXT NOT NULL,
            blob TEXT, blob_checksum TEXT, nbytes INTEGER NOT NULL, created REAL NOT NULL)""")
        self._pending: dict[str, tuple[str, bytes, str, str | None, str | None, int, float]] = {}
        self._first_pending = 0.0

    def get(self, key: str) -> tuple[Outputs | None, bool]:
        """(outputs, corrupt): outputs is None on a miss; corrupt is True when a bad entry was found and removed."""
        row = self._pending.get(key)
        if row is None:
            found = self._db.execute("SELECT key, payload, checksum, blob, blob_checksum, nbytes, created "
                                     "FROM entries WHERE key = ?", (key,)).fetchone()
            if found is None:
                return None, False
            row = found
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

    def put(self, key: str, outputs: Outputs) -> None:
        tensors: dict[str, Any] = {}
        payload = json.dumps(encode(outputs, tensors), separators=(",", ":")).encode()
        blob = blob_checksum = None
        nbytes = len(payload)
        if tensors:
            from safetensors.torch import save

            data = save(tensors)
            blob = f"{key[:2]}/{key}.safetensors"
            blob_checksum = hashlib.sha256(data).hexdigest()
            _write_atomically(self.blobs / blob, data)
            nbytes += len(data)
        if not self._pending:
            self._first_pending = time.monotonic()
        self._pending[key] = (key, payload, hashlib.sha256(payload).hexdigest(), blob, blob_checksum, nbytes,
                              time.time())
        if len(self._pending) >= FLUSH_EVERY or time.monotonic() - self._first_pending > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        rows = list(self._pending.values())
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._pending.clear()

    def _remove(self, key: str, blob: str | None) -> None:
        self._pending.pop(key, None)
        self._db.execute("DELETE FROM entries WHERE key = ?", (key,))
        if blob:
            (self.blobs / blob).unlink(missing_ok=True)

    def info(self) -> dict[str, Any]:
        self.flush()
        count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(nbytes), 0) FROM entries").fetchone()
        return {"path": str(self.root), "entries": count, "bytes": total}

    def clear(self) -> None:
        self._pending.clear()
        self._db.execute("DELETE FROM entries")
        shutil.rmtree(self.blobs, ignore_errors=True)
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._db.execute("VACUUM")

    def close(self) -> None:
        self.flush()
        self._db.close()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ResultCache:
    """Both tiers behind one lock. ``disk`` is None for a memory-only cache (``--no-cache`` uses no cache)."""

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
                    self.memory.put(key, outputs)
                    return outputs
            self.stats.misses += 1
            return None

    def put(self, key: str, outputs: Outputs) -> None:
        with self._lock:
            self.memory.put(key, outputs)
            if self.disk is not None:
                self.disk.put(key, outputs)
            self.stats.writes += 1

    def flush(self) -> None:
        with self._lock:
            if self.disk is not None:
                self.disk.flush()

    def info(self) -> dict[str, Any]:
        with self._lock:
            disk = self.disk.info() if self.disk is not None else {"path": None, "entries": 0, "bytes": 0}
            return {**disk, "memory_entries": len(self.memory), "memory_bytes": self.memory.used,
                    "memory_budget": self.memory.budget}

    def clear(self) -> None:
        with self._lock:
            self.memory.clear()
            if self.disk is not None:
                self.disk.clear()

    def close(self) -> None:
        with self._lock:
            if self.disk is not None:
                self.disk.close()
