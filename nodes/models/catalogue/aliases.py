"""Model aliases from the shipped and the user's ``models.toml``: a short name for a Hub id, a path or another
model, or a model assembled from component files (a ComfyUI user's UNet/transformer, text encoder and VAE files).

    [aliases]
    sd15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    mine = { model = "~/ckpts/dreamshaper_8.safetensors", family = "sd", vae = "~/vae/vae-ft-mse.safetensors" }
    my-flux = { family = "flux", transformer = "flux1-dev-Q4_K_S.gguf", text_encoder = "clip_l.safetensors",
                text_encoder_2 = "t5xxl_fp8_e4m3fn.safetensors", vae = "ae.safetensors" }

    [folders]
    search = ["~/ComfyUI/models/checkpoints", "~/ComfyUI/models/loras", "~/ComfyUI/models/vae"]

Relative component paths are relative to the ``models.toml`` that names them; a bare file name that is no alias is
looked up in the ``search`` folders.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import ModelResolveError
from nodeforge.engine.files import names_local_path

COMPONENT_KEYS = ("unet", "transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3")
SETTING_KEYS = ("architecture", "config", "prediction")
PREDICTIONS = ("epsilon", "v")
KNOWN_KEYS = frozenset({"model", "family", "description", "file", "allow", *COMPONENT_KEYS, *SETTING_KEYS})


@dataclass(frozen=True)
class Alias:
    """A short name for another model name (usually a Hub id), from a shipped or the user's models TOML. ``file``
    is a path inside the target (one adapter file of a repository holding many); ``allow`` the file patterns a Hub
    download takes (default: everything but the formats nodeforge never loads). ``parts`` are component files
    that complete or replace the target's (``target`` is empty for a model made of parts only); ``settings`` say
    how to read a single file (``architecture``: a bundled configuration, ``config``: a diffusers folder,
    ``prediction``: epsilon or v)."""

    name: str
    target: str
    family: str | None
    description: str
    origin: str
    file: str | None = None
    allow: tuple[str, ...] = ()
    parts: tuple[tuple[str, str], ...] = ()
    settings: tuple[tuple[str, str], ...] = ()


def read_aliases(path: Path, origin: str) -> dict[str, Alias]:
    """Aliases of one TOML file: ``[aliases]`` with ``name = "target"`` or ``name = {model, family, ...}``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelResolveError(f"models config {path} cannot be read: {exc}") from None
    found: dict[str, Alias] = {}
    for name, entry in (data.get("aliases") or {}).items():
        found[name] = _alias(name, {"model": entry} if isinstance(entry, str) else entry, path, origin)
    return found


def _alias(name: str, entry: Any, path: Path, origin: str) -> Alias:
    where = f"models config {path}: alias '{name}'"
    if not isinstance(entry, dict):
        raise ModelResolveError(f'{where} needs a model (a string or {{model = "org/name"}})')
    parts = tuple((key, _local(entry[key], path)) for key in COMPONENT_KEYS if key in entry)
    if not isinstance(entry.get("model", ""), str) or (not entry.get("model") and not parts):
        raise ModelResolveError(f'{where} needs a model (a string or {{model = "org/name"}}) or component files '
                                f"({', '.join(COMPONENT_KEYS)})")
    unknown = sorted(set(entry) - KNOWN_KEYS)
    if unknown:
        raise ModelResolveError(f"{where} has unknown key(s) {', '.join(unknown)}; accepted: "
                                f"{', '.join(sorted(KNOWN_KEYS))}")
    allow = entry.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(p, str) for p in allow) or \
            not isinstance(entry.get("file", ""), str):
        raise ModelResolveError(f"{where}: file is a path inside the model and allow a list of file patterns")
    settings = tuple((key, str(entry[key])) for key in SETTING_KEYS if key in entry)
    if "prediction" in entry and entry["prediction"] not in PREDICTIONS:
        raise ModelResolveError(f"{where}: prediction is {' or '.join(PREDICTIONS)}, not {entry['prediction']!r}")
    if "config" in entry:
        settings = tuple((k, _local(v, path) if k == "config" else v) for k, v in settings)
    return Alias(name, entry.get("model", ""), entry.get("family"), entry.get("description", ""),
                 f"{origin} {path.name}", entry.get("file"), tuple(allow), parts, settings)


def _local(value: Any, toml: Path) -> str:
    """A component path as written, made absolute against the TOML's folder when it is a relative local path."""
    if not isinstance(value, str) or not value.strip():
        raise ModelResolveError(f"models config {toml}: a component is a file path or model name, not {value!r}")
    text = value.strip()
    candidate = Path(os.path.expanduser(text))
    if candidate.is_absolute() or not (names_local_path(text) or (toml.parent / candidate).exists()):
        return str(candidate) if candidate.is_absolute() else text
    return str((toml.parent / candidate).resolve())


def read_search_folders(path: Path) -> tuple[Path, ...]:
    """The folders a bare file name is looked up in (``[folders] search = [...]``, relative to the TOML): a
    ComfyUI or A1111 install's model folders, so an imported workflow's ``v1-5-pruned-emaonly.safetensors``
    resolves where the user keeps it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelResolveError(f"models config {path} cannot be read: {exc}") from None
    search = (data.get("folders") or {}).get("search", [])
    if not isinstance(search, list) or not all(isinstance(item, str) and item.strip() for item in search):
        raise ModelResolveError(f"models config {path}: [folders] search is a list of folder paths")
    return tuple((path.parent / Path(item).expanduser()).resolve() for item in search)


def inside(folder: Path, alias: Alias | None) -> Path:
    """The file an alias names inside its target folder (the folder itself when it names none)."""
    if alias is None or alias.file is None:
        return folder
    path = folder / alias.file
    if not path.exists():
        raise ModelResolveError(f"alias '{alias.name}' ({alias.origin}) names {alias.file}, which is not in "
                                f"{alias.target}")
    return path
