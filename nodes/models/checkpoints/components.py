"""One pipeline component loaded from a user's file: a UNet or transformer (safetensors, GGUF), a VAE, a text
encoder (``clip_l.safetensors``, ``t5xxl_fp8_e4m3fn.safetensors``), or a diffusers folder of one.

The configuration comes from a diffusers-layout folder (a bundled one, a tiny model's, or the user's); the weights
from the file. fp8 weights are upcast to the compute dtype (ComfyUI's scaled fp8 files are multiplied by their
``scale_weight`` first). A file that does not fit is a NodeError naming the component and what does not match.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import NodeError, first_line

DENOISERS = ("unet", "transformer")
TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")
COMPONENTS = (*DENOISERS, "vae", *TEXT_ENCODERS)
DENOISER_PREFIX = "model.diffusion_model."
OTHER_PREFIXES = ("vae.", "first_stage_model.", "text_encoders.", "cond_stage_model.", "conditioner.")
# Where the original layouts keep each text encoder, longest first (SD3 single files, SDXL, SD 1.x, bare files).
TEXT_PREFIXES = {
    "text_encoder": ("text_encoders.clip_l.transformer.", "conditioner.embedders.0.transformer.",
                     "cond_stage_model.transformer.", "cond_stage_model.model.", "transformer."),
    "text_encoder_2": ("text_encoders.clip_g.transformer.", "text_encoders.t5xxl.transformer.",
                       "conditioner.embedders.1.model.", "conditioner.embedders.0.model.", "transformer."),
    "text_encoder_3": ("text_encoders.t5xxl.transformer.", "transformer."),
}


def component_index(folder: Path) -> dict[str, Any]:
    """A configuration folder's ``model_index.json``: the pipeline class and its components."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NodeError(f"configuration {folder} has no readable model_index.json: {exc}", input="model") from None
    return dict(index)


def component_class(folder: Path, name: str) -> tuple[str, str]:
    """(library, class name) of a component as the configuration folder's ``model_index.json`` declares it."""
    index = component_index(folder)
    entry = index.get(name)
    if not isinstance(entry, list) or len(entry) != 2 or entry[1] is None:
        raise NodeError(f"this model has no component '{name}' (its pipeline has: "
                        f"{', '.join(k for k, v in index.items() if isinstance(v, list) and v[1])})", input="model")
    return str(entry[0]), str(entry[1])


def weighted_components(folder: Path) -> list[str]:
    """The components of a configuration that carry weights (not tokenizers, schedulers or safety checkers)."""
    index = component_index(folder)
    return [name for name in COMPONENTS if isinstance(index.get(name), list) and index[name][1] is not None]


class StateDicts:
    """The tensors of each file, read once while one pipeline is assembled (an all-in-one Flux file holds the
    transformer, the VAE and both text encoders)."""

    def __init__(self) -> None:
        self._read: dict[tuple[Path, tuple[str, ...]], dict[str, Any]] = {}

    def __call__(self, path: Path, prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
        """The file's tensors, only those under ``prefixes`` when it has any (one encoder of a whole checkpoint
        is read without the rest of it)."""
        if (path, prefixes) not in self._read:
            self._read[(path, prefixes)] = load_state_dict(path, prefixes)
        return self._read[(path, prefixes)]


def load_component(name: str, path: Path, folder: Path, dtype: Any, states: StateDicts | None = None) -> Any:
    """Component ``name`` from ``path`` (a file or a diffusers folder of that component) with the configuration of
    ``folder``; NodeError on ``model`` naming the component when the file does not fit."""
    library, cls_name = component_class(folder, name)
    cls = getattr(importlib.import_module(library), cls_name)
    states = states or StateDicts()
    try:
        if path.is_dir():
            return cls.from_pretrained(str(path), dtype=dtype)
        if name in TEXT_ENCODERS:
            return _text_encoder(cls, name, states(path, TEXT_PREFIXES[name]), folder, dtype)
        return _diffusers_model(cls, name, path, folder, dtype, states)
    except NodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - shape mismatches, missing keys, foreign files: the component does not fit
        raise NodeError(f"component {name} ({path.name}) does not fit this {cls_name}: {type(exc).__name__}: "
                        f"{first_line(exc)}", input="model") from None


def _diffusers_model(cls: Any, name: str, path: Path, folder: Path, dtype: Any, states: StateDicts) -> Any:
    """A UNet, transformer or VAE through diffusers' single-file reader (original or diffusers layout; GGUF
    quantized weights stay quantized and are dequantized per layer in ``dtype``). Flux transformers in the original
    layout are renamed by nodeforge's own reader first: diffusers' assumes FLUX.1's width."""
    kwargs: dict[str, Any] = {"config": str(folder), "subfolder": name, "dtype": dtype,
                              "local_files_only": True}
    if path.suffix.lower() == ".gguf":
        from diffusers import GGUFQuantizationConfig
        from diffusers.models.model_loading_utils import load_gguf_checkpoint

        kwargs["quantization_config"] = GGUFQuantizationConfig(compute_dtype=dtype)
        state = dict(load_gguf_checkpoint(str(path)))
    else:
        state = upcast_state_dict(states(path), dtype)
    if cls.__name__ == "FluxTransformer2DModel" and any(k.endswith("img_in.weight") for k in state):
        from nodeforge.nodes.models.checkpoints.layout_flow import transformer_from_original

        state = transformer_from_original(denoiser_only(state), "flux")
        if "quantization_config" not in kwargs:  # own storage for each split of a fused tensor: aligned like a load
            state = {key: tensor.clone() for key, tensor in state.items()}
    return cls.from_single_file(state, **kwargs)


def denoiser_only(state: dict[str, Any]) -> dict[str, Any]:
    """The transformer's tensors of a file that may also hold the VAE and text encoders (all-in-one files)."""
    if any(key.startswith(DENOISER_PREFIX) for key in state):
        return {key: value for key, value in state.items() if key.startswith(DENOISER_PREFIX)}
    return {key: value for key, value in state.items() if not key.startswith(OTHER_PREFIXES)}


def _text_encoder(cls: Any, name: str, loaded: dict[str, Any], folder: Path, dtype: Any) -> Any:
    """A transformers text encoder built from the folder's config and filled from a state dict in the Hugging Face
    layout (as ComfyUI's ``clip_l``/``clip_g``/``t5xxl`` files are), under any of the original layouts' prefixes."""
    import torch

    config = cls.config_class.from_pretrained(str(folder / name))
    with torch.device("meta"):
        model = cls(config)
    expected = model.state_dict()
    state = _strip_prefix(upcast_state_dict(loaded, dtype), expected, TEXT_PREFIXES[name])
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(k for k in set(expected) - set(state) if not _derivable(k, state))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or wrong or (unexpected and len(unexpected) > len(expected) // 10):
        detail = (f"{len(missing)} of its weights are missing (e.g. {missing[0]})" if missing else
                  f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, the configuration wants "
                  f"{tuple(expected[wrong[0]].shape)}" if wrong else
                  f"{len(unexpected)} weights belong to another model (e.g. {unexpected[0]})")
        raise NodeError(f"component {name} is not a {cls.__name__} of this model: {detail}", input="model")
    if "text_projection.weight" in expected and "text_projection.weight" not in state:
        state["text_projection.weight"] = torch.eye(*expected["text_projection.weight"].shape, dtype=dtype)
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False, assign=True)
    _tie_embeddings(model, state)
    model.to(dtype)
    for module_name, buffer in list(model.named_buffers()):
        if buffer.is_meta:  # position ids and the like: rebuild them as the model's __init__ would
            owner = model.get_submodule(module_name.rsplit(".", 1)[0]) if "." in module_name else model
            owner.register_buffer(module_name.rsplit(".", 1)[-1],
                                  torch.arange(buffer.shape[-1]).expand(buffer.shape).clone(), persistent=False)
    return model.eval()


def _derivable(key: str, state: Mapping[str, Any]) -> bool:
    """Weights a file may leave out because the model ties or rebuilds them (T5's token embedding, position ids,
    the identity projection of SD3's CLIP-L, which its files do not carry)."""
    return key.endswith("position_ids") or key == "text_projection.weight" or \
        (key == "encoder.embed_tokens.weight" and "shared.weight" in state)


def _tie_embeddings(model: Any, state: Mapping[str, Any]) -> None:
    if "shared.weight" in state and hasattr(model, "encoder") and hasattr(model.encoder, "embed_tokens"):
        model.encoder.embed_tokens = model.shared


def _strip_prefix(state: dict[str, Any], expected: Mapping[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """The state dict under the first prefix whose keys match the model's (or as it is, when its keys already do)."""
    from nodeforge.nodes.models.checkpoints.layout_sd import open_clip_from_original

    for prefix in ("", *prefixes):
        inner = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if "transformer.resblocks.0.attn.in_proj_weight" in inner:  # OpenCLIP (SD 2.x, SDXL's second encoder)
            inner = open_clip_from_original(inner)
        if any(key in expected for key in inner):
            return inner
        # transformers 5 names CLIP's weights without the ``text_model.`` level that original files have
        bare = {k.removeprefix("text_model."): v for k, v in inner.items()}
        if any(key in expected for key in bare) and not any(key.startswith("text_model.") for key in expected):
            return bare
    return state


def load_state_dict(path: Path, prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The tensors of a safetensors or pickled weights file (pickles read with ``weights_only``: no code runs),
    only those under ``prefixes`` when the file has any."""
    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            names = list(handle.keys())
            wanted = [n for n in names if n.startswith(prefixes)] if prefixes else names
            return {name: handle.get_tensor(name) for name in (wanted or names)}
    data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    wanted_tensors = {k: v for k, v in tensors.items() if prefixes and k.startswith(prefixes)}
    return wanted_tensors or tensors


def upcast_state_dict(state: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """fp8 tensors as ``dtype`` (devices here have no fp8 compute; storage in fp8 is ``--memory-mode``'s job). A
    ComfyUI "scaled" fp8 file carries a ``scale_weight`` per layer: the real weight is the product."""
    import torch

    eight_bit = {getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, name)}
    if not any(getattr(t, "dtype", None) in eight_bit for t in state.values()):
        return state
    out: dict[str, Any] = {}
    for key, tensor in state.items():
        if key.endswith((".scale_weight", ".scale_input")) or key == "scaled_fp8":
            continue
        if getattr(tensor, "dtype", None) in eight_bit:
            tensor = tensor.to(dtype)
            scale = state.get(key.removesuffix(".weight") + ".scale_weight") if key.endswith(".weight") else None
            if scale is not None:
                tensor = tensor * scale.to(dtype)
        out[key] = tensor
    return out
