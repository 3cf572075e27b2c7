"""Where model names lead: the protocol a session resolves them through, and what a resolution returns.

The engine knows no model families. An installed package provides the catalogue through the ``nodeforge.models``
entry point (the built-in one: ``nodeforge.nodes.models:build_resolver``); a ``Registry`` loads it the first time a
node or a route asks, so a process that never touches a model never imports it. Nodes reach it through their
context (``ctx.models``) and their ``check`` hook, never through a module-level instance.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from nodeforge.engine.errors import ModelResolveError, first_line

ENTRY_POINT_GROUP = "nodeforge.models"

Source = Literal["tiny", "shipped", "path", "hub", "parts", "config", "remote"]


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name led: files on local disk, how they were found, and the family when it is known."""

    name: str
    source: Source
    path: Path
    family: str | None = None
    repo: str | None = None
    alias: str | None = None
    parts: tuple[tuple[str, Path], ...] = ()
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """Identity for the model manager: two names that lead to the same files (the same component files and
        loading settings, for a model assembled from parts) share one loaded model."""
        extra = "".join(f"+{name}={path}" for name, path in self.parts)
        extra += "".join(f";{name}={value}" for name, value in self.settings)
        return f"{self.source}:{self.path}{extra}"


@dataclass(frozen=True)
class ModelEntry:
    """One name the catalogue offers (``GET /api/models``, ``/v1/models``, ``nodeforge models``)."""

    name: str
    kind: str | None
    source: str
    description: str


class ModelSource(Protocol):
    """Resolves model names. ``families`` are the model families the caller can run; a known family outside them
    is an error. ``data_dir`` is the run's data folder (user aliases, the models folder); None means the default."""

    @property
    def installed(self) -> bool:
        """Whether a package provides the catalogue (``NoModels`` says no)."""
        ...

    def resolve(self, name: str, data_dir: Path | None, *, families: Iterable[str] = (),
                relative_paths: bool = True) -> ResolvedModel:
        """The files behind ``name`` (building a tiny model or downloading when it must); ModelResolveError says
        what was tried. ``relative_paths=False`` never takes a name for a path relative to the working folder."""
        ...

    def problem(self, name: str, data_dir: Path | None = None, *, families: Iterable[str] = ()) -> str | None:
        """What is certainly wrong with ``name``, found without building or downloading (static validation)."""
        ...

    def family_of(self, name: str, data_dir: Path | None = None) -> str | None:
        """The family a name is known to have without building or downloading anything."""
        ...

    def remote_name(self, name: str) -> str | None:
        """The model name at a remote server when ``name`` names one (possibly empty), None for a local model."""
        ...

    def known_files(self, name: str) -> Path | None:
        """The files behind ``name`` when known without building or downloading (a shipped model, a path)."""
        ...

    def entries(self, data_dir: Path | None) -> list[ModelEntry]:
        """Every name offered: tiny, shipped, aliases (with the user's, when ``data_dir`` is given)."""
        ...

    def local_problem(self, name: str, data_dir: Path | None) -> str | None:
        """Why ``name`` cannot be loaded from this machine alone; None when it can."""
        ...

    def offline_problem(self, name: str, data_dir: Path | None) -> str | None:
        """``local_problem`` while the Hub is offline; None online, where a Hub id may download."""
        ...


class NoModels:
    """The source when no package provides one: every model name is an error that says what to install."""

    installed = False

    def __init__(self, reason: str = "") -> None:
        self.reason = reason or f"no model catalogue is installed (entry point group '{ENTRY_POINT_GROUP}')"

    def resolve(self, name: str, data_dir: Path | None, *, families: Iterable[str] = (),
                relative_paths: bool = True) -> ResolvedModel:
        raise ModelResolveError(f"cannot load model '{name}': {self.reason}")

    def problem(self, name: str, data_dir: Path | None = None, *, families: Iterable[str] = ()) -> str | None:
        return None

    def family_of(self, name: str, data_dir: Path | None = None) -> str | None:
        return None

    def remote_name(self, name: str) -> str | None:
        return None

    def known_files(self, name: str) -> Path | None:
        return None

    def entries(self, data_dir: Path | None) -> list[ModelEntry]:
        return []

    def local_problem(self, name: str, data_dir: Path | None) -> str | None:
        return self.reason

    def offline_problem(self, name: str, data_dir: Path | None) -> str | None:
        return self.reason


def model_key(kind: str, resolved: ResolvedModel) -> str:
    """The one identity rule for a loaded model: what was built (``kind``: a diffusion pipeline, a captioner)
    from which files. Nodes and the chat endpoint that build the same kind from the same files share one copy."""
    return f"{kind}:{resolved.key}"


def load_model_source() -> ModelSource:
    """The installed catalogue: the ``nodeforge.models`` entry point (the first by name when there are several).
    A broken one, or none, gives a ``NoModels`` that names the reason at the first model a graph uses."""
    entries = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda entry: entry.name)
    if not entries:
        return NoModels()
    entry = entries[0]
    try:
        source: ModelSource = entry.load()()
    except Exception as exc:  # noqa: BLE001 - a broken plugin becomes a named error, not a crashed start-up
        return NoModels(f"the model catalogue '{entry.name}' ({entry.value}) failed to load: {first_line(exc)}")
    return source


class LazyModelSource:
    """The installed catalogue, loaded on the first question (finding and building it costs a tenth of a second,
    which a graph of text nodes, or ``nodeforge validate`` of one, never pays)."""

    def __init__(self, load: Callable[[], ModelSource] = load_model_source) -> None:
        self._load = load
        self._source: ModelSource | None = None
        self._lock = threading.Lock()

    def _get(self) -> ModelSource:
        if self._source is None:
            with self._lock:
                if self._source is None:
                    self._source = self._load()
        return self._source

    @property
    def installed(self) -> bool:
        return self._get().installed

    def resolve(self, name: str, data_dir: Path | None, *, families: Iterable[str] = (),
                relative_paths: bool = True) -> ResolvedModel:
        return self._get().resolve(name, data_dir, families=families, relative_paths=relative_paths)

    def problem(self, name: str, data_dir: Path | None = None, *, families: Iterable[str] = ()) -> str | None:
        return self._get().problem(name, data_dir, families=families)

    def family_of(self, name: str, data_dir: Path | None = None) -> str | None:
        return self._get().family_of(name, data_dir)

    def remote_name(self, name: str) -> str | None:
        return self._get().remote_name(name)

    def known_files(self, name: str) -> Path | None:
        return self._get().known_files(name)

    def entries(self, data_dir: Path | None) -> list[ModelEntry]:
        return self._get().entries(data_dir)

    def local_problem(self, name: str, data_dir: Path | None) -> str | None:
        return self._get().local_problem(name, data_dir)

    def offline_problem(self, name: str, data_dir: Path | None) -> str | None:
        return self._get().offline_problem(name, data_dir)
