"""The result cache as the Ray driver sees it: object references in memory, in front of the shared disk tier."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.ray.refs import holds_refs
from nodeforge.engine.values import value_nbytes


class RefCache:
    """The cache as the driver sees it on a cluster: a memory tier of object references the driver owns (least
    recently used dropped beyond the byte budget, which frees the objects), in front of the disk tier the workers
    write. Values computed in the driver itself are written to disk here."""

    def __init__(self, inner: ResultCache) -> None:
        self.inner = inner
        self.budget = inner.memory.budget
        self.used = 0
        self.stats = inner.stats
        self._entries: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def disk_root(self) -> str | None:
        return str(self.inner.disk.root) if self.inner.disk is not None else None

    def present(self, keys: list[str]) -> set[str]:
        with self._lock:
            found = {key for key in keys if key in self._entries}
        return found | self.inner.present([key for key in keys if key not in found])

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.stats.memory_hits += 1
                return entry[0]
        return self.inner.get(key)

    def put(self, key: str, outputs: dict[str, Any], nbytes: int | None = None) -> None:
        """Keep outputs (references, or values computed in the driver) under ``key``; ``nbytes`` is what the
        referenced objects hold, as the worker measured them."""
        size = value_nbytes(outputs) if nbytes is None else nbytes
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.used -= old[1]
            if size <= self.budget:
                self._entries[key] = (outputs, size)
                self.used += size
            while self.used > self.budget:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.used -= evicted
            self.stats.writes += 1
        if nbytes is None and self.inner.disk is not None and not holds_refs(outputs):
            self.inner.disk.put(key, outputs)

    def park(self, key: str, device: str) -> None:
        """Nothing to park: the objects already live in the object store, not on a device."""

    def flush(self) -> None:
        self.inner.flush()

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {**self.inner.info(), "memory_entries": len(self._entries), "memory_bytes": self.used}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.used = 0
        self.inner.clear()

    def close(self) -> None:
        self.inner.close()
