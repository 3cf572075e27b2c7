"""Which files a running graph may open: every path a node reads, writes or loads a model from goes through here.

A node declares its file inputs on their fields (``FileInput``, ``FolderInput``, ``ModelInput``: see
``engine.declarations``) and opens them through ``ctx.files`` when it runs, so a path is checked the same way
whether it was written in the graph, given as a graph input or computed by an upstream node.

Without a ``FilePolicy`` (the CLI on one's own graphs) paths mean what they mean in a shell: relative to the
working folder, then to the graph library's folders. With a policy (the server, any embedding that passes one):

- a file to read must lie, symlinks resolved, inside one of ``policy.read``; a relative path is looked up in the
  graph library's folders and then in those folders, never in the working folder;
- a folder to write must lie inside one of ``policy.write`` (the data dir's ``outputs`` and the folders given for
  writing); a relative folder is taken under the data dir's ``outputs``;
- a model name that is a local path must lie inside ``policy.read`` too; other names (tiny models, shipped
  models, aliases, Hub ids) go to the model resolver unchanged.

Outside those folders a path gets one answer whether or not it exists, so no path's existence can be probed,
and messages never show the absolute path the server resolved.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nodeforge.engine.artifact_paths import artifact_id_of, find_artifact
from nodeforge.engine.errors import NodeError
from nodeforge.engine.limits import MediaLimits

FileUse = Literal["read", "write", "model"]
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin", ".onnx", ".gguf")
_LOCAL = re.compile(r"^(/|~|\.{1,2}([/\\]|$)|[A-Za-z]:[/\\]|file:)|\\|(^|[/\\])\.\.([/\\]|$)")
NAME_MAX = 255
"""The longest name of one file or folder on the file systems the server runs on (bytes)."""
OUTSIDE_READ = "is not a file inside the folders this server allows"
PLAIN_NAMES = (" (a plain name is looked for in the data dir's inputs folder, the graph's own folder and the "
               "readable folders)")
OUTSIDE_WRITE = "is not a folder this server may write to (the outputs folder or an --allow-write-dir folder)"
OUTSIDE_MODEL = "is not a model file or folder inside the folders this server allows"


def names_local_path(text: str) -> bool:
    """Whether a model name is written as a local path (absolute, ``~``, ``./``, ``..``, a backslash, a weights
    file suffix) rather than a model name such as ``tiny/sd`` or a Hub id ``org/name``."""
    return bool(_LOCAL.search(text)) or Path(text).suffix.lower() in WEIGHT_SUFFIXES


def is_within(path: Path | str, folders: Iterable[Path]) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside one of ``folders`` (also resolved)."""
    real = os.path.realpath(path)
    for folder in folders:
        root = os.path.realpath(folder)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


@dataclass(frozen=True)
class FilePolicy:
    """The folders a graph may read from and write to; paths are made absolute and symlink-free once."""

    read: tuple[Path, ...]
    write: tuple[Path, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "read", tuple(Path(os.path.realpath(p)) for p in self.read))
        object.__setattr__(self, "write", tuple(Path(os.path.realpath(p)) for p in self.write))


@dataclass(frozen=True)
class FileAccess:
    """How the nodes of one session open files: the policy (None: unrestricted), the data dir, the graph
    library's folders (a graph's own assets) and the media limits. Picklable, so remote workers apply the same."""

    policy: FilePolicy | None = None
    data_dir: Path | None = None
    search: tuple[Path, ...] = ()
    limits: MediaLimits = field(default_factory=MediaLimits)

    @property
    def restricted(self) -> bool:
        return self.policy is not None

    def read(self, text: str, *, input: str) -> Path:
        """The file a node reads for ``text`` (a path or an uploaded artifact id); NodeError on ``input``."""
        found = self.find_file(text)
        if found is None:
            if self.policy is not None and not self._names_allowed_place(text):
                raise NodeError(f"'{_shown(text)}' {OUTSIDE_READ}", input=input)
            where = "" if Path(text).is_absolute() else PLAIN_NAMES
            raise NodeError(f"no file or uploaded artifact '{_shown(text)}'{where}", input=input)
        return found

    def _lookup_folders(self) -> tuple[Path, ...]:
        """Where a relative name is looked for: the graph library's folders, then the readable folders (the
        data dir's inputs first), or the data dir's inputs without a policy."""
        if self.policy is not None:
            return (*self.search, *self.policy.read)
        inputs = (self.data_dir / "inputs",) if self.data_dir is not None else ()
        return (*self.search, *inputs)

    def _names_allowed_place(self, text: str) -> bool:
        """Whether ``text`` names a place inside the readable folders (so a miss is a missing file, not a refusal)."""
        if self.policy is None:
            return True
        path = Path(os.path.expanduser(text.removeprefix("file://")))
        if path.is_absolute():
            return is_within(path, self.policy.read)
        return any(is_within(folder / path, self.policy.read) for folder in self._lookup_folders())

    def find_file(self, text: str) -> Path | None:
        """The readable file ``text`` names, or None (outside the allowed folders, or nothing there)."""
        if not text or "\x00" in text:
            return None
        if self.data_dir is not None and artifact_id_of(text) is not None:
            return find_artifact(self.data_dir, text)
        path = Path(os.path.expanduser(text.removeprefix("file://")))
        if self.policy is None:
            candidates = [path, *(folder / path for folder in self._lookup_folders() if not path.is_absolute())]
            return next((candidate for candidate in candidates if _is_file(candidate)), None)
        roots = self.policy.read
        if path.is_absolute():
            return path if is_within(path, roots) and _is_file(path) else None
        for folder in self._lookup_folders():
            candidate = folder / path
            if is_within(candidate, roots) and _is_file(candidate):
                return candidate
        return None

    def write_folder(self, text: str, *, input: str) -> Path:
        """The folder a node writes into for ``text`` (empty: the data dir's outputs), created; NodeError on
        ``input`` when the policy does not allow writing there."""
        outputs = (self.data_dir or Path.cwd()) / "outputs"
        if "\x00" in text:
            raise NodeError("the folder name contains a NUL character", input=input)
        path = Path(os.path.expanduser(text)) if text else outputs
        if self.policy is not None:
            path = path if path.is_absolute() else outputs / path
            if not is_within(path, self.policy.write):
                raise NodeError(f"'{_shown(text)}' {OUTSIDE_WRITE}", input=input)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def model(self, name: str, *, input: str) -> str:
        """The model name to hand the resolver: unchanged without a policy; with one, a local path becomes the
        absolute path inside the allowed folders it names (NodeError on ``input`` when there is none), and a
        plain name that is a folder or file under an allowed folder becomes that path."""
        if self.policy is None:
            return name
        text = name.strip()
        if "\x00" in text:
            raise NodeError("the model name contains a NUL character", input=input)
        path = Path(os.path.expanduser(text.removeprefix("file://")))
        roots = self.policy.read
        if path.is_absolute():
            if is_within(path, roots) and _exists(path):
                return str(path)
            raise NodeError(f"'{_shown(name)}' {OUTSIDE_MODEL}", input=input)
        for folder in roots:
            candidate = folder / path
            if is_within(candidate, roots) and _exists(candidate):
                return str(candidate)
        if names_local_path(text):
            raise NodeError(f"'{_shown(name)}' {OUTSIDE_MODEL}", input=input)
        return name

    def problem(self, text: str, use: FileUse) -> str | None:
        """Why a literal path in a submitted graph will be refused when it is used (None: it may be used); only
        what the policy forbids, so a graph may name a file inside the allowed folders that a node writes first."""
        if self.policy is None or not text:
            return None
        if "\x00" in text:
            return "contains a NUL character"
        if any(len(part.encode()) > NAME_MAX for part in re.split(r"[/\\]", text)):
            return f"has a part longer than {NAME_MAX} bytes: no file, folder or model is named so"
        path = Path(os.path.expanduser(text.removeprefix("file://")))
        if use == "read":
            if artifact_id_of(text) is not None:
                return None
            if path.is_absolute():
                return None if is_within(path, self.policy.read) else OUTSIDE_READ
            return OUTSIDE_READ if _escapes(text) and self.find_file(text) is None else None
        if use == "write":
            outputs = (self.data_dir or Path.cwd()) / "outputs"
            return None if is_within(path if path.is_absolute() else outputs / path, self.policy.write) \
                else OUTSIDE_WRITE
        try:
            self.model(text, input="")
        except NodeError:
            return OUTSIDE_MODEL
        return None


def declared_strings(value: Any, use: FileUse) -> Iterator[str]:
    """The path strings in one declared input's value: the string itself, the items of a list, and for model
    inputs the ``model`` entries of objects (``loras: [{"model": ..., "weight": ...}]``). Links and graph-input
    references (``{"from": ...}``, ``{"input": ...}``) hold no literal and are checked when used."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from declared_strings(item, use)
    elif isinstance(value, Mapping) and use == "model" and isinstance(value.get("model"), str):
        yield value["model"]


def _is_file(path: Path) -> bool:
    """``Path.is_file`` that takes a name the file system refuses (too long, a component over NAME_MAX) as
    nothing there, as it does a missing one, instead of raising."""
    try:
        return path.is_file()
    except OSError:
        return False


def _exists(path: Path) -> bool:
    """``Path.exists``, with a name the file system refuses taken as nothing there (see ``_is_file``)."""
    try:
        return path.exists()
    except OSError:
        return False


def _escapes(text: str) -> bool:
    return bool(re.search(r"(^|[/\\])\.\.([/\\]|$)", text))


def _shown(text: str) -> str:
    return text if len(text) <= 200 else text[:197] + "..."
