"""Model names for ``GET /api/models`` and ``GET /v1/models``, read from the model registry (``nodes.models``)
when it is installed, and whether a name can be loaded from this machine alone. The import is lazy and optional:
without the package the list is empty and says so."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def registry() -> Any | None:
    """The model resolver, or None when the models package is not installed."""
    try:
        return importlib.import_module("nodeforge.nodes.models").RESOLVER
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


def local_problem(resolver: Any, name: str, data_dir: Path | None, *, aliases: bool = True) -> str | None:
    """Why ``name`` cannot be loaded from this machine alone (None when it can), found without building, converting
    or downloading anything: a tiny model builds locally, a shipped model needs its package, an existing path is
    there, an alias needs a target that is, and a Hub id needs its snapshot in the local Hugging Face cache."""
    from nodeforge.nodes.models.resolver import HUB_ID

    name = name.strip()
    if name.startswith("tiny/"):
        return None if name.removeprefix("tiny/") in resolver.tiny else f"there is no tiny model '{name}'"
    if name in resolver.shipped:
        package = resolver.shipped[name].package
        return None if importlib.util.find_spec(package) else f"its package '{package}' is not installed"
    if Path(name).expanduser().exists():
        return None
    alias = resolver.aliases(data_dir).get(name) if aliases else None
    if alias is not None:
        problem = local_problem(resolver, alias.target, data_dir, aliases=False)
        return problem and f"it is an alias of '{alias.target}': {problem}"
    match = HUB_ID.match(name)
    if match is None:
        return "it is not a model on this machine"
    return None if _cached(match["repo"], match["revision"]) else "its weights are not in the local Hugging Face cache"


def offline_problem(resolver: Any, name: str, data_dir: Path | None) -> str | None:
    """``local_problem`` while the Hub is offline (HF_HUB_OFFLINE); None online, where a Hub id may download."""
    from nodeforge.nodes.models.resolver import hub_offline

    return local_problem(resolver, name, data_dir) if hub_offline() else None


def _cached(repo: str, revision: str | None) -> bool:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - any miss (not cached, no such revision, unreadable cache) means: not here
        return False
    return True
