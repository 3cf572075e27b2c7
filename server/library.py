"""The graph library the API edits: the data dir's ``graphs/`` (writable) over the project's examples (read-only).

Names are strict (``[A-Za-z0-9][A-Za-z0-9_.-]{0,99}``, matched whole, no ``..``, no ``.json`` suffix), so a name
can never reach outside the folder; writes are atomic. The listing is indexed by each file's size and
modification time, so it stays cheap and still notices edits made on disk.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.document import MAX_DEPTH, GraphDocument, atomic_write_text
from nodeforge.engine.saved_graphs import GraphLibrary

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class BadName(ValueError):
    """A graph name that is not allowed."""


class GraphMissing(LookupError):
    pass


class ReadOnly(PermissionError):
    pass


class Unreadable(ValueError):
    """A saved file that is not a JSON object."""


def check_name(name: str) -> str:
    if not NAME.fullmatch(name) or ".." in name:
        raise BadName(f"'{name[:120]}' is not a valid graph name: 1-100 letters, digits, '_', '.', '-', starting "
                      "with a letter or digit, without '..'")
    if name.lower().endswith(".json"):
        raise BadName(f"'{name}': give the graph's name without '.json'")
    return name


@dataclass(frozen=True, slots=True)
class GraphInfo:
    name: str
    description: str
    readonly: bool
    inputs: dict[str, Any]
    outputs: list[str]
    modified: float


class GraphStore:
    """Saved graphs by name; ``library`` is the engine's view of the same folders (for ``graph.call``)."""

    def __init__(self, writable: Path, examples: Path | None) -> None:
        self.writable = writable
        self.examples = examples
        writable.mkdir(parents=True, exist_ok=True)
        self.library = GraphLibrary([writable, *([examples] if examples else [])])
        self._lock = threading.Lock()
        self._index: dict[Path, tuple[tuple[int, int], GraphInfo | None]] = {}

    def folders(self) -> list[Path]:
        return [self.writable, *([self.examples] if self.examples else [])]

    def _locate(self, name: str) -> tuple[Path, bool]:
        check_name(name)
        for folder in self.folders():
            path = folder / f"{name}.json"
            if path.is_file():
                return path, folder != self.writable
        raise GraphMissing(f"no saved graph named '{name}'")

    def read(self, name: str) -> tuple[dict[str, Any], bool]:
        """The saved document as stored, and whether it is a read-only example."""
        path, readonly = self._locate(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Unreadable(f"saved graph '{name}' cannot be read: {exc}") from None
        except RecursionError:
            raise Unreadable(f"saved graph '{name}' cannot be read: nested deeper than {MAX_DEPTH} levels") from None
        if not isinstance(data, dict):
            raise Unreadable(f"saved graph '{name}' is not a JSON object")
        return data, readonly

    def save(self, name: str, document: GraphDocument) -> bool:
        """Write atomically into the writable folder (shadowing an example of that name); True when created."""
        path = self.writable / f"{check_name(name)}.json"
        created = not path.exists()
        data = document.to_json()
        data["name"] = name
        atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return created

    def delete(self, name: str) -> None:
        path, readonly = self._locate(name)
        if readonly:
            raise ReadOnly(f"'{name}' is a read-only example graph")
        try:
            path.unlink()
        except FileNotFoundError:  # another request deleted it since it was found
            raise GraphMissing(f"no saved graph named '{name}'") from None

    def list(self) -> list[GraphInfo]:
        seen: dict[str, GraphInfo] = {}
        for folder in self.folders():
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.json")):
                if path.stem in seen or not NAME.fullmatch(path.stem) or ".." in path.stem:
                    continue
                info = self._info(path, folder != self.writable)
                if info is not None:
                    seen[path.stem] = info
        return sorted(seen.values(), key=lambda info: info.name)

    def _info(self, path: Path, readonly: bool) -> GraphInfo | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._index.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        info = _read_info(path, readonly, stat.st_mtime)
        with self._lock:
            self._index[path] = (stamp, info)
        return info

    def forget(self) -> None:
        """Drop the listing index (the watcher calls this when files change)."""
        with self._lock:
            self._index.clear()


def _read_info(path: Path, readonly: bool, modified: float) -> GraphInfo | None:
    """A listing entry; files that are not graph documents (``graph.schema.json``) are left out."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        return None
    inputs, outputs, description = data.get("inputs"), data.get("outputs"), data.get("description")
    return GraphInfo(path.stem, description if isinstance(description, str) else "", readonly,
                     inputs if isinstance(inputs, dict) else {}, list(outputs) if isinstance(outputs, dict) else [],
                     modified)

