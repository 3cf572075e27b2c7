"""Model names for ``GET /api/models`` and ``GET /v1/models``, read from the model registry (``nodes.models``)
when it is installed. The import is lazy and optional: without the package the list is empty and says so."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def registry() -> Any | None:
    """The model resolver, or None when the models package is not installed."""
    try:
        return importlib.import_module("nodes.models").RESOLVER
    except (ImportError, AttributeError):
        return None


def known_models(data_dir: Path | None, families: Iterable[str] = ()) -> tuple[list[dict[str, Any]], bool]:
    """(entries {name, kind, source, description}, whether the registry is installed); ``families`` filters."""
    resolver = registry()
    if resolver is None:
        return [], False
    wanted = set(families)
    entries = [{"name": f"tiny/{name}", "kind": tiny.family, "source": "tiny", "description": tiny.description}
               for name, tiny in resolver.tiny.items()]
    entries += [{"name": name, "kind": shipped.family, "source": "shipped", "description": shipped.description}
                for name, shipped in resolver.shipped.items()]
    entries += [{"name": name, "kind": alias.family, "source": f"alias ({alias.origin}) of {alias.target}",
                 "description": alias.description} for name, alias in resolver.aliases(data_dir).items()]
    if wanted:
        entries = [entry for entry in entries if entry["kind"] in wanted]
    return sorted(entries, key=lambda entry: (entry["source"] != "tiny", entry["name"])), True
