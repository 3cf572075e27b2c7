"""A diffusion pipeline from a user's files, offline: a single-file checkpoint and/or separate component files.

The configuration a checkpoint needs (``model_index.json``, each component's config, the tokenizers) comes from the
configurations that ship with nodeforge (``config/<architecture>``, see ``bundled.py``), a tiny model's folder, or
a folder the user names; it is picked by comparing the checkpoint's sizes with each candidate's (``inspection``),
so nothing is fetched from the Hub. Components the checkpoint lacks (a bare Flux transformer has no text encoders
or VAE) come from the model's alias in ``models.toml``; a pipeline that would still miss one is an error naming it
before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.nodes.models.checkpoints.components import (
    TEXT_ENCODERS,
    StateDicts,
    component_index,
    load_component,
    weighted_components,
)
from nodeforge.nodes.models.checkpoints.inspection import Checkpoint, config_signature, describe, inspect_checkpoint

if TYPE_CHECKING:
    from nodeforge.engine.context import NodeContext

# Configurations tried for a checkpoint of each family: the bundled real architectures, then the tiny models.
CANDIDATES: Mapping[str, tuple[str, ...]] = {
    "sd": ("config/sd15", "config/sd2-base", "config/sd2-v", "tiny/sd", "tiny/sd-inpainting"),
    "sdxl": ("config/sdxl-base", "config/sdxl-refiner", "tiny/sdxl"),
    "sd3": ("config/sd3-medium", "config/sd35-medium", "config/sd35-large", "tiny/sd3"),
    "flux": ("config/flux-dev", "config/flux-schnell", "tiny/flux"),
    "wan": ("config/wan21-t2v-1.3b", "tiny/wan"),
}
OPTIONAL_PARTS = {"sd3": ("text_encoder_3",)}
# Families whose single files nodeforge reads part by part (diffusers' Flux reader assumes FLUX.1's width).
COMPONENT_FAMILIES = ("flux", "wan")  # SD3 runs without its T5 encoder (lower prompt fidelity)
V_PREDICTION = ("config/sd2-v",)
# ComfyUI's test for SD 2.x v-prediction checkpoints: this norm's bias spreads wider in v-models.
V_PROBE = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"

FindConfig = Callable[[str], Path]
CONFIG = ModelKind("config")
"""A bundled or tiny configuration folder a single-file checkpoint is assembled with."""


@dataclass(frozen=True)
class ModelFiles:
    """What a diffusion model is made of: ``base`` (a diffusers folder or a single file; None when the model is
    assembled from parts only), component files that complete or replace the base's, and the alias's settings
    (``architecture``, ``config``, ``prediction``)."""

    name: str
    base: Path | None
    parts: Mapping[str, Path]
    settings: Mapping[str, str]

    @property
    def single_file(self) -> bool:
        return self.base is None or self.base.is_file()


def model_files(resolved: ResolvedModel) -> ModelFiles:
    """The base and component files of a resolved model (a model made of parts only has no base)."""
    base = None if resolved.source == "parts" else resolved.path
    return ModelFiles(resolved.name, base, dict(resolved.parts), dict(resolved.settings))


def find_config(ctx: NodeContext) -> FindConfig:
    """Configuration folders by name (``config/<architecture>``, ``tiny/<name>``) for a node's single files."""
    return lambda name: ctx.models.resolve(name, input="config", kind=CONFIG).path


def checkpoint_of(files: ModelFiles, family: str) -> Checkpoint:
    """What the base file (or, without one, the denoiser part: a file, or a diffusers folder of the component)
    holds; NodeError when there is no denoiser."""
    path = files.base or files.parts.get("transformer") or files.parts.get("unet")
    if path is None:
        raise NodeError(f"model '{files.name}' names no checkpoint and no unet or transformer component",
                        input="model")
    if path.is_dir():
        signature = config_signature(path.parent, family, component=path.name) or {}
        return Checkpoint(path, family, frozenset(), signature, "unknown")
    return inspect_checkpoint(path)


def choose_config(files: ModelFiles, checkpoint: Checkpoint, find: FindConfig) -> Path:
    """The configuration folder for a checkpoint: the alias's ``config`` folder or ``architecture`` when given
    (checked against the checkpoint's sizes), else the one candidate of its family whose sizes match."""
    if "config" in files.settings:
        return _checked(files, checkpoint, Path(files.settings["config"]).expanduser(), "its config folder")
    if "architecture" in files.settings:
        name = files.settings["architecture"]
        return _checked(files, checkpoint, find(name if name.startswith("tiny/") else f"config/{name}"), name)
    matches = [name for name in CANDIDATES.get(checkpoint.family, ())
               if config_signature(find(name), checkpoint.family) == dict(checkpoint.signature)]
    if not matches:
        tried = "; ".join(f"{name}: {describe(config_signature(find(name), checkpoint.family) or {})}"
                          for name in CANDIDATES.get(checkpoint.family, ()))
        raise NodeError(f"model '{files.name}' is a {checkpoint.family} checkpoint ({describe(checkpoint.signature)})"
                        f" whose sizes match no bundled configuration ({tried}); give its diffusers configuration "
                        f"folder as config = \"...\" in its models.toml alias", input="model")
    if len(matches) > 1:
        matches = [_by_prediction(files, checkpoint, matches)]
    return find(matches[0])


def _checked(files: ModelFiles, checkpoint: Checkpoint, folder: Path, what: str) -> Path:
    signature = config_signature(folder, checkpoint.family)
    if signature != dict(checkpoint.signature):
        raise NodeError(f"model '{files.name}': {what} ({folder.name}) does not fit the checkpoint: it has "
                        f"{describe(signature or {})}, the checkpoint {describe(checkpoint.signature)}", input="model")
    return folder


def _by_prediction(files: ModelFiles, checkpoint: Checkpoint, matches: list[str]) -> str:
    """Between configurations of the same sizes (SD 2.x 512 epsilon and 768 v): the alias's ``prediction``, the
    checkpoint's own ``v_pred`` marker, else ComfyUI's norm-spread test."""
    wanted = files.settings.get("prediction") or checkpoint.prediction
    if wanted is None and checkpoint.path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(checkpoint.path), framework="pt") as handle:
            if V_PROBE in handle.keys():  # noqa: SIM118 - safe_open has no __contains__
                wanted = "v" if float(handle.get_tensor(V_PROBE).float().std(unbiased=False)) > 0.09 else "epsilon"
    v_models = [name for name in matches if name in V_PREDICTION]
    others = [name for name in matches if name not in V_PREDICTION]
    if wanted == "v" and v_models:
        return v_models[0]
    return (others or matches)[0]


def missing_parts(files: ModelFiles, checkpoint: Checkpoint, folder: Path) -> list[str]:
    held = set(checkpoint.parts) if files.base is not None and files.base.is_file() else set()
    held |= set(files.parts)
    if files.base is None and ("transformer" in files.parts or "unet" in files.parts):
        held |= {"transformer", "unet"}
    optional = OPTIONAL_PARTS.get(checkpoint.family, ())
    return [name for name in weighted_components(folder) if name not in held and name not in optional]


def load_from_files(cls: Any | None, files: ModelFiles, family: str, dtype: Any, find: FindConfig,
                    extra: Mapping[str, Any]) -> tuple[Any, Path]:
    """The pipeline ``cls`` (None: the configuration's own class) built from a single file and/or component files,
    and the configuration folder it used (the node reads VAE overrides against it)."""
    checkpoint = checkpoint_of(files, family)
    if checkpoint.family != family:
        raise NodeError(f"model '{files.name}' is a {checkpoint.family} checkpoint, not {family}", input="model")
    folder = choose_config(files, checkpoint, find)
    if family in COMPONENT_FAMILIES and files.base is not None and files.base.is_file():
        held = {part: files.base for part in checkpoint.parts}
        files = ModelFiles(files.name, None, {**held, **files.parts}, files.settings)
    missing = missing_parts(files, checkpoint, folder)
    if missing:
        raise NodeError(f"model '{files.name}' ({checkpoint.path.name}) holds no {', '.join(missing)}; a {family} "
                        f"pipeline needs {', '.join(weighted_components(folder))}. Name the missing file(s) in its "
                        f"models.toml alias, e.g. {missing[0]} = \"/path/to/{missing[0]}.safetensors\"",
                        input="model")
    if cls is None:
        import diffusers

        cls = getattr(diffusers, str(component_index(folder)["_class_name"]))
    states = StateDicts()
    components = {name: load_component(name, path, folder, dtype, states) for name, path in files.parts.items()}
    for name in OPTIONAL_PARTS.get(family, ()):
        if name not in components and name not in checkpoint.parts:
            components[name] = None
            components[name.replace("text_encoder", "tokenizer")] = None
    if files.base is not None and files.base.is_file():
        # diffusers' own readers of the encoders inside a checkpoint fail on transformers 5 (OpenCLIP left empty)
        for name in TEXT_ENCODERS:
            if name in checkpoint.parts and name not in components:
                components[name] = load_component(name, files.base, folder, dtype, states)
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True, **extra, **components}
    try:
        if files.base is not None and files.base.is_file():
            pipe = cls.from_single_file(str(files.base), config=str(folder), **kwargs)
        else:
            pipe = cls.from_pretrained(str(files.base or folder), **kwargs)
    except NodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of diffusers' reader: one message naming the model
        raise NodeError(f"model '{files.name}' could not be loaded as a {family} pipeline from "
                        f"{checkpoint.path.name} with the {folder.name} configuration: {type(exc).__name__}: "
                        f"{first_line(exc)}", input="model") from None
    if files.settings.get("prediction") == "v" and "prediction_type" in pipe.scheduler.config:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, prediction_type="v_prediction")
    return pipe, folder

