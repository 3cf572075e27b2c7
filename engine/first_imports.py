"""First imports made safe for threads: one module is first imported by one thread at a time.

Nodes import their heavy libraries lazily, inside ``run``, so a session's worker threads are often the first to
import them. diffusers and transformers resolve ``from diffusers import StableDiffusionXLPipeline`` through lazy
modules whose submodules import each other; when two threads do that for the first time at once, Python's
per-module locks see a cycle between the threads and hand one of them a partially initialised module
(``ImportError: cannot import name ...``). A process that imported the library before its threads started (the
test suite's) never sees it; a fresh ``nodeforge run --devices cpu:0,cpu:1`` did, every time.

``serialize_first_imports`` wraps ``builtins.__import__`` and ``importlib.import_module`` (the lazy modules' way
in) so that an import of anything not yet fully loaded takes one process-wide re-entrant lock before any of
Python's module locks. A thread waiting for it holds no module lock, so no cycle can form. An import of a module
already loaded takes the unlocked path and costs a dictionary look-up. Imports are process-wide, so the guard is
too: a session installs it once, and installing it again changes nothing.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import importlib.util
import sys
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

_MARK = "_nodeforge_serialized"


def serialize_first_imports() -> None:
    """Install the guard in this process (idempotent)."""
    if getattr(builtins.__import__, _MARK, False):
        return
    lock = threading.RLock()
    original_import = builtins.__import__
    original_import_module = importlib.import_module

    def guarded_import(name: str, globals: Mapping[str, Any] | None = None, locals: Mapping[str, Any] | None = None,
                       fromlist: Sequence[str] | None = (), level: int = 0) -> ModuleType:
        if _loaded(name if level == 0 else _absolute(name, globals, level), fromlist):
            return original_import(name, globals, locals, fromlist, level)
        with lock:
            return original_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name: str, package: str | None = None) -> ModuleType:
        absolute = importlib.util.resolve_name(name, package) if name.startswith(".") else name
        if _loaded(absolute, ()):
            return original_import_module(name, package)
        with lock:
            return original_import_module(name, package)

    setattr(guarded_import, _MARK, True)
    builtins.__import__ = guarded_import
    importlib.import_module = functools.wraps(original_import_module)(guarded_import_module)


def _absolute(name: str, globals: Mapping[str, Any] | None, level: int) -> str | None:
    """The absolute module name of a relative import, None when it cannot be told cheaply (then: the lock)."""
    package = (globals or {}).get("__package__")
    if not package:
        return None
    try:
        return importlib.util.resolve_name("." * level + name, package)
    except ImportError:
        return None


def _loaded(name: str | None, fromlist: Sequence[str] | None) -> bool:
    """Whether importing ``name`` (and taking ``fromlist`` from it) only reads what is already loaded."""
    module = sys.modules.get(name) if name is not None else None
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return False
    if not fromlist:
        return True
    attributes = getattr(module, "__dict__", ())
    return all(item in attributes or item == "*" for item in fromlist)

