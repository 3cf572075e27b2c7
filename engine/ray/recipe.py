"""How a Ray worker process rebuilds the driver's node registry: the driver writes a ``WorkerRecipe`` of the
plugin folders and node modules its registry came from, and each worker builds its registry from that once."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

from nodeforge.engine.registry import ENTRY_POINT_GROUP, Registry


@dataclass(frozen=True, slots=True)
class WorkerRecipe:
    """How a worker process rebuilds the driver's node registry: entry points, plus these plugin folders and node
    modules. ``token`` changes when a plugin file does, so workers import the plugin folders again."""

    token: str
    plugin_dirs: tuple[str, ...]
    modules: tuple[str, ...]


def recipe_of(registry: Registry) -> WorkerRecipe:
    """The recipe of ``registry`` as its plugin files stand now (driver side)."""
    plugin_dirs, modules = _registry_sources(registry)
    return WorkerRecipe(_plugin_token(plugin_dirs), plugin_dirs, modules)


@functools.lru_cache(maxsize=4)
def registry_for(recipe: WorkerRecipe) -> Registry:
    """This process's node registry for a recipe, built once per process (worker side)."""
    registry = Registry.discover([Path(folder) for folder in recipe.plugin_dirs])
    for name in recipe.modules:
        registry.add_module(importlib.import_module(name))
    return registry


def _registry_sources(registry: Registry) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The plugin folders and importable modules a worker needs to rebuild ``registry`` (entry points aside:
    workers load those themselves)."""
    packages = tuple(entry.value.split(":")[0]
                     for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    folders: set[str] = set()
    modules: set[str] = set()
    for spec in registry:
        name = spec.cls.__module__
        if name == "__main__" or any(name == package or name.startswith(f"{package}.") for package in packages):
            continue
        top = name.split(".")[0]
        if top.startswith("nodeforge_plugin_"):
            origin = getattr(sys.modules.get(top), "__file__", None)
            if origin:
                path = Path(origin)
                folders.add(str(path.parent.parent if path.name == "__init__.py" else path.parent))
        else:
            modules.add(name)
    return tuple(sorted(folders)), tuple(sorted(modules))


def _plugin_token(folders: tuple[str, ...]) -> str:
    """Changes whenever a file in the plugin folders does (workers then import them again)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path}:{stat.st_mtime_ns}:{stat.st_size};".encode())
    return digest.hexdigest()[:16]
