"""Saved graphs by name: the folders ``graph.call`` and the server look in, first match wins."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from nodeforge.engine.document import GraphDocument, load_document
from nodeforge.engine.errors import GraphNotFoundError

GRAPH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class GraphLibrary:
    """Resolves graph names to documents from an ordered list of folders (writable one first); ``documents``
    are graphs not written yet, found before any file."""

    def __init__(self, folders: Sequence[Path], documents: Mapping[str, GraphDocument] | None = None) -> None:
        self.folders = [Path(folder) for folder in folders]
        self.documents = dict(documents or {})

    def with_document(self, name: str, document: GraphDocument) -> GraphLibrary:
        """This library as it will be once ``document`` is saved as ``name``: what a save is validated against, so
        that graph.call sees the new version (and a chain of calls that comes back to it)."""
        return GraphLibrary(self.folders, {**self.documents, name: document})

    def path_of(self, name: str) -> Path:
        if not GRAPH_NAME.fullmatch(name) or ".." in name:
            raise GraphNotFoundError(f"'{name}' is not a valid graph name (letters, digits, '_', '.', '-')")
        file_name = name if name.endswith(".json") else f"{name}.json"
        for folder in self.folders:
            candidate = folder / file_name
            if candidate.is_file():
                return candidate
        tried = ", ".join(str(folder) for folder in self.folders) or "no folders"
        raise GraphNotFoundError(f"no saved graph named '{name}' (looked in {tried})")

    def load(self, name: str) -> GraphDocument:
        unsaved = self.documents.get(name.removesuffix(".json"))
        return unsaved if unsaved is not None else load_document(self.path_of(name))

    def names(self) -> Iterator[str]:
        seen: set[str] = set()
        for folder in self.folders:
            for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
                if path.stem not in seen and GRAPH_NAME.fullmatch(path.stem):
                    seen.add(path.stem)
                    yield path.stem


def document_digest(document: GraphDocument) -> str:
    """A content hash of what a graph computes (editor state excluded), for cache keys of ``graph.call``."""
    data = document.to_json()
    data.pop("ui", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
