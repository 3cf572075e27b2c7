"""Which files a graph sent to the server may name: only those inside the allowed folders.

Node inputs that take files are recognised by name (``path``, ``file``, ``model``, ``lora``... and ``*_path``,
``*_file``, ``*_dir``), at any depth (``loras: [{"model": ...}]``). For a file input every string must resolve,
symlinks followed, inside an allowed folder (an artifact id is also accepted). For a model input only strings
that name a local path are checked (absolute, ``~``, ``./``, ``..``, a backslash); ``tiny/sd`` and Hub ids
``org/name`` are model names, not paths. A relative path is resolved the way nodes resolve it (``image.load``):
against the working folder when the file is there, else against the graph library's folders (a graph's assets).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.artifacts import artifact_id_of
from engine.errors import Issue

FILE_INPUTS = frozenset({"path", "paths", "file", "files", "filename", "folder", "directory", "dir"})
MODEL_INPUTS = frozenset({"model", "models", "lora", "loras", "checkpoint", "weights", "vae", "voice"})
_FILE_SUFFIXES = ("_path", "_file", "_dir", "_folder")
_LOCAL = re.compile(r"^(/|~|\.{1,2}([/\\]|$)|[A-Za-z]:[/\\]|file:)|\\|(^|[/\\])\.\.([/\\]|$)")


def is_within(path: Path | str, folders: Sequence[Path]) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside one of ``folders`` (also resolved)."""
    real = os.path.realpath(path)
    for folder in folders:
        root = os.path.realpath(folder)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def _kind(name: str) -> str | None:
    lowered = name.lower()
    if lowered in FILE_INPUTS or lowered.endswith(_FILE_SUFFIXES):
        return "file"
    if lowered in MODEL_INPUTS:
        return "model"
    return None


def _strings(value: Any, kind: str | None) -> Iterator[tuple[str, str]]:
    """(kind, string) for every string under a file or model input, looking into lists and objects."""
    if isinstance(value, str):
        if kind is not None:
            yield kind, value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, kind)
    elif isinstance(value, dict):
        if set(value) in ({"from"}, {"input"}):
            return
        for key, item in value.items():
            yield from _strings(item, _kind(key) if key != "value" else kind)


def locate(text: str, search: Sequence[Path]) -> Path:
    """The file a node opens for ``text``: as given (relative to the working folder) when it exists there or is
    absolute, else the first that exists relative to ``search`` (the library's folders), else as given."""
    path = Path(os.path.expanduser(text.removeprefix("file://") if text.startswith("file://") else text))
    direct = path if path.is_absolute() else Path.cwd() / path
    if path.is_absolute() or direct.exists():
        return direct
    for folder in search:
        if (folder / path).exists():
            return folder / path
    return direct


def path_problem(text: str, kind: str, allowed: Sequence[Path], search: Sequence[Path] = ()) -> str | None:
    """Why ``text`` may not be used as a file (None when it may)."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text or (kind == "file" and artifact_id_of(text) is not None):
        return None
    if kind == "model" and not _LOCAL.search(text):
        return None
    if is_within(locate(text, search), allowed):
        return None
    return "names a file outside the folders this server allows"


def path_issues(document: dict[str, Any], allowed: Sequence[Path], search: Sequence[Path] = ()) -> list[Issue]:
    """An issue for every file a raw graph document names outside ``allowed`` (media input defaults included);
    ``search`` are the folders relative paths are also looked up in."""
    issues: list[Issue] = []
    nodes = document.get("nodes")
    for node_id, node in (nodes.items() if isinstance(nodes, dict) else ()):
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for name, value in (inputs.items() if isinstance(inputs, dict) else ()):
            for kind, text in _strings(value, _kind(name)):
                problem = path_problem(text, kind, allowed, search)
                if problem:
                    issues.append(Issue(str(node_id), str(name), "forbidden_path", f"{text[:200]!r} {problem}"))
    declared = document.get("inputs")
    for name, decl in (declared.items() if isinstance(declared, dict) else ()):
        if isinstance(decl, dict) and decl.get("type") in ("image", "audio", "video") \
                and isinstance(decl.get("default"), str):
            problem = path_problem(decl["default"], "file", allowed, search)
            if problem:
                issues.append(Issue(None, str(name), "forbidden_path", f"default {decl['default'][:200]!r} {problem}"))
    return issues
