"""The node registry: an instance built from modules, entry points and plugin folders (never a global).

A package names the modules that hold its nodes in ``NODE_MODULES`` (a tuple of module names relative to it); the
registry imports exactly those, so what a package registers is written in one place and nothing is scanned. A
plugin that fails to import or declares a node wrongly is recorded as a ``PluginProblem`` with its name and reason;
the other plugins still load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from nodeforge.engine.errors import EngineError, NodeDefinitionError
from nodeforge.engine.model_source import LazyModelSource, ModelSource
from nodeforge.engine.node import Node, NodeSpec, build_spec

ENTRY_POINT_GROUP = "nodeforge.nodes"
NODE_MODULES = "NODE_MODULES"


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """A plugin (or one of its modules or nodes) that could not be loaded, and why."""

    plugin: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"plugin": self.plugin, "reason": self.reason}


class UnknownNodeType(EngineError):
    pass


class Registry:
    """Node types by type id, and the model catalogue their model inputs resolve through. Build one with
    ``Registry.discover`` or add modules and classes by hand; the catalogue is the installed one
    (``engine.model_source``), loaded on first use, unless one is given."""

    def __init__(self, model_source: ModelSource | None = None) -> None:
        self._specs: dict[str, NodeSpec] = {}
        self.model_source: ModelSource = model_source if model_source is not None else LazyModelSource()
        self.problems: list[PluginProblem] = []

    @classmethod
    def discover(cls, plugin_dirs: Iterable[Path] = (), *, entry_points: bool = True,
                 model_source: ModelSource | None = None) -> Registry:
        """The registry a CLI or server uses: installed entry points (the built-in nodes among them), then folders;
        the installed model catalogue unless ``model_source`` is given."""
        registry = cls(model_source)
        if entry_points:
            registry.load_entry_points()
        for folder in plugin_dirs:
            registry.load_folder(Path(folder))
        return registry

    def __contains__(self, type_id: object) -> bool:
        """Whether ``type_id`` names a node type; anything else a document may hold there (a list) names none."""
        return isinstance(type_id, str) and type_id in self._specs

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(sorted(self._specs.values(), key=lambda spec: spec.type))

    def __len__(self) -> int:
        return len(self._specs)

    def find(self, type_id: str) -> NodeSpec | None:
        """The spec of a type id, or None when no such type is registered."""
        return self._specs.get(type_id)

    def get(self, type_id: str) -> NodeSpec:
        try:
            return self._specs[type_id]
        except KeyError:
            raise UnknownNodeType(f"unknown node type '{type_id}'") from None

    def add(self, node_cls: type[Node], source: str = "") -> NodeSpec:
        """Register one node class; raises NodeDefinitionError when it is declared wrongly or its type is taken."""
        spec = build_spec(node_cls, source or node_cls.__module__)
        existing = self._specs.get(spec.type)
        if existing is not None and existing.cls is not node_cls:
            raise NodeDefinitionError(f"node type '{spec.type}' from {spec.source} is already registered by "
                                      f"{existing.source}")
        self._specs[spec.type] = spec
        return spec

    def add_module(self, module: ModuleType, source: str = "") -> None:
        """Register every node class defined in a module; a bad declaration is a problem, the rest still load."""
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Node) and obj is not Node and obj.__module__ == module.__name__ \
                    and ("type_id" in vars(obj) or "type" in vars(obj)):  # "type": reported as renamed
                try:
                    self.add(obj, source or module.__name__)
                except NodeDefinitionError as exc:
                    self.problems.append(PluginProblem(source or module.__name__, str(exc)))

    def add_package(self, package: ModuleType, source: str = "") -> None:
        """Register the node classes of a module, and of the submodules its ``NODE_MODULES`` lists."""
        self.add_module(package, source)
        names = getattr(package, NODE_MODULES, ())
        if not isinstance(names, tuple | list) or not all(isinstance(name, str) for name in names):
            self.problems.append(PluginProblem(source or package.__name__,
                                               f"{package.__name__}.{NODE_MODULES} is not a tuple of module names"))
            return
        for name in names:
            qualified = f"{package.__name__}.{name}"
            try:
                module = importlib.import_module(qualified)
            except Exception as exc:
                self.problems.append(PluginProblem(source or qualified, _reason(qualified, exc)))
                continue
            self.add_module(module, source)

    def load_entry_points(self) -> None:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                target = entry.load()
            except Exception as exc:
                self.problems.append(PluginProblem(entry.name, _reason(entry.value, exc)))
                continue
            if isinstance(target, ModuleType):
                self.add_package(target, entry.name)
            else:
                self.problems.append(PluginProblem(entry.name, f"{entry.value} is not a module"))

    def load_folder(self, folder: Path) -> None:
        """Import each ``*.py`` file and each package (folder with ``__init__.py``, its node modules named in its
        ``NODE_MODULES``) in a plugins folder."""
        if not folder.is_dir():
            self.problems.append(PluginProblem(str(folder), "plugins folder does not exist"))
            return
        for path in sorted(folder.iterdir()):
            if path.name.startswith(("_", ".")):
                continue
            init = path / "__init__.py"
            if path.suffix == ".py" or init.is_file():
                self._load_plugin_file(path.stem, init if init.is_file() else path)

    def _load_plugin_file(self, name: str, path: Path) -> None:
        module_name = f"nodeforge_plugin_{name}"
        locations = [str(path.parent)] if path.name == "__init__.py" else None
        spec = importlib.util.spec_from_file_location(module_name, path, submodule_search_locations=locations)
        if spec is None or spec.loader is None:
            self.problems.append(PluginProblem(name, f"{path} cannot be imported"))
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            self.problems.append(PluginProblem(name, _reason(str(path), exc)))
            return
        self.add_package(module, name)

    def catalogue(self) -> list[dict[str, Any]]:
        return [spec.catalogue_entry() for spec in self]


def _reason(where: str, exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{where}: {type(exc).__name__}: {exc}{at}"
