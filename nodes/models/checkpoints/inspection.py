"""What a single weights file holds, read from its tensor names and shapes alone (no tensor is loaded).

Users' checkpoints come in the original (A1111/ComfyUI) layout: a whole SD 1.x/2.x or SDXL pipeline in one file, an
SD3 file with or without its text encoders, a bare Flux or Wan transformer, in safetensors, GGUF or an old pickled
``.ckpt``. ``inspect_checkpoint`` names the family, the pipeline components the file holds and the sizes that pick
its configuration (``signature``); ``config_signature`` reads the same sizes from a diffusers configuration, so a
checkpoint is matched to a configuration by comparing the two.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nodeforge.engine.errors import NodeError

WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".ckpt", ".pt", ".pth", ".bin")
UNET = "model.diffusion_model."
FLOW_PREFIXES = ("model.diffusion_model.", "")


@dataclass(frozen=True)
class TensorIndex:
    """Names, shapes and dtypes of the tensors in a weights file (GGUF shapes in torch order)."""

    shapes: Mapping[str, tuple[int, ...]]
    dtypes: Mapping[str, str]

    def has(self, *prefixes: str) -> bool:
        return any(name.startswith(prefixes) for name in self.shapes)

    def count(self, pattern: str) -> int:
        """How many distinct block numbers match ``pattern`` (a regex whose first group is the number)."""
        compiled = re.compile(pattern)
        return len({match.group(1) for name in self.shapes if (match := compiled.match(name))})


@dataclass(frozen=True)
class Checkpoint:
    """A weights file as the loader sees it: ``family`` (sd, sdxl, sd3, flux, wan), the pipeline components inside
    it, the sizes its configuration must have, and what it says about its noise prediction (SD 2.x)."""

    path: Path
    family: str
    parts: frozenset[str]
    signature: Mapping[str, int]
    dtype: str
    prediction: str | None = None
    prefix: str = ""
    notes: tuple[str, ...] = field(default=())


def read_index(path: Path) -> TensorIndex:
    """The tensor index of a safetensors, GGUF or pickled checkpoint; NodeError on ``model`` when unreadable."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            return _safetensors_index(path)
        if suffix == ".gguf":
            return _gguf_index(path)
        if suffix in (".ckpt", ".pt", ".pth", ".bin"):
            return _pickle_index(path)
    except NodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - a torn or foreign file: one clear message naming it
        raise NodeError(f"{path.name} is not a readable {suffix[1:]} weights file: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}", input="model") from None
    raise NodeError(f"{path.name}: weights files are {', '.join(WEIGHT_SUFFIXES)}", input="model")


def _safetensors_index(path: Path) -> TensorIndex:
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
            piece = handle.get_slice(name)
            shapes[name] = tuple(int(n) for n in piece.get_shape())
            dtypes[name] = str(piece.get_dtype())
    return TensorIndex(shapes, dtypes)


def _gguf_index(path: Path) -> TensorIndex:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    shapes = {t.name: tuple(int(n) for n in reversed(t.shape.tolist())) for t in reader.tensors}
    dtypes = {t.name: t.tensor_type.name for t in reader.tensors}
    return TensorIndex(shapes, dtypes)


def _pickle_index(path: Path) -> TensorIndex:
    import torch

    data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise NodeError(f"{path.name} holds no state dict of tensors", input="model")
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    return TensorIndex({k: tuple(v.shape) for k, v in tensors.items()},
                       {k: str(v.dtype).removeprefix("torch.") for k, v in tensors.items()})


def inspect_checkpoint(path: Path, index: TensorIndex | None = None) -> Checkpoint:
    """The family, components and sizes of a checkpoint; NodeError on ``model`` for files of no known kind."""
    index = index or read_index(path)
    dtype = _main_dtype(index)
    for probe in (_flux, _sd3, _wan, _unet):
        found = probe(path, index, dtype)
        if found is not None:
            return found
    raise NodeError(f"{path.name} is not a checkpoint of a model nodeforge can run: its tensor names match none of "
                    "SD 1.x/2.x, SDXL, SD3/3.5, Flux or Wan 2.x in the original or diffusers single-file layout",
                    input="model")


def _main_dtype(index: TensorIndex) -> str:
    """The most common dtype of the file's large tensors (what a user calls an fp16 or fp8 checkpoint)."""
    counts: dict[str, int] = {}
    for name, shape in index.shapes.items():
        if len(shape) >= 2:
            counts[index.dtypes[name]] = counts.get(index.dtypes[name], 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else "unknown"


def _flow_prefix(index: TensorIndex, probe: str) -> str | None:
    return next((p for p in FLOW_PREFIXES if p + probe in index.shapes), None)


def _flux(path: Path, index: TensorIndex, dtype: str) -> Checkpoint | None:
    prefix = _flow_prefix(index, "img_in.weight")
    if prefix is None or not index.has(prefix + "double_blocks."):
        return None
    hidden, in_channels = index.shapes[prefix + "img_in.weight"][:2]
    signature = {"in_channels": in_channels, "hidden": hidden,
                 "layers": index.count(re.escape(prefix) + r"double_blocks\.(\d+)\."),
                 "single_layers": index.count(re.escape(prefix) + r"single_blocks\.(\d+)\."),
                 "guidance": int(prefix + "guidance_in.in_layer.weight" in index.shapes)}
    parts = {"transformer"}
    if index.has("vae.", "first_stage_model."):
        parts.add("vae")
    if index.has("text_encoders.clip_l."):
        parts.add("text_encoder")
    if index.has("text_encoders.t5xxl."):
        parts.add("text_encoder_2")
    return Checkpoint(path, "flux", frozenset(parts), signature, dtype, prefix=prefix)


def _sd3(path: Path, index: TensorIndex, dtype: str) -> Checkpoint | None:
    prefix = _flow_prefix(index, "x_embedder.proj.weight")
    if prefix is None or not index.has(prefix + "joint_blocks."):
        return None
    hidden, in_channels = index.shapes[prefix + "x_embedder.proj.weight"][:2]
    signature = {"in_channels": in_channels, "hidden": hidden,
                 "layers": index.count(re.escape(prefix) + r"joint_blocks\.(\d+)\."),
                 "dual_layers": index.count(re.escape(prefix) + r"joint_blocks\.(\d+)\.x_block\.attn2\.")}
    parts = {"transformer"}
    for name, part in (("first_stage_model.", "vae"), ("text_encoders.clip_l.", "text_encoder"),
                       ("text_encoders.clip_g.", "text_encoder_2"), ("text_encoders.t5xxl.", "text_encoder_3")):
        if index.has(name):
            parts.add(part)
    return Checkpoint(path, "sd3", frozenset(parts), signature, dtype, prefix=prefix)


def _wan(path: Path, index: TensorIndex, dtype: str) -> Checkpoint | None:
    prefix = _flow_prefix(index, "patch_embedding.weight")
    if prefix is None or not index.has(prefix + "blocks.0.self_attn."):
        return None
    hidden, in_channels = index.shapes[prefix + "patch_embedding.weight"][:2]
    signature = {"in_channels": in_channels, "hidden": hidden,
                 "layers": index.count(re.escape(prefix) + r"blocks\.(\d+)\.")}
    return Checkpoint(path, "wan", frozenset({"transformer"}), signature, dtype, prefix=prefix)


def _unet(path: Path, index: TensorIndex, dtype: str) -> Checkpoint | None:
    conv_in = index.shapes.get(UNET + "input_blocks.0.0.weight")
    if conv_in is None:
        return None
    context = next((shape[1] for name, shape in sorted(index.shapes.items())
                    if name.startswith(UNET) and name.endswith("attn2.to_k.weight")), 0)
    sdxl = index.has(UNET + "label_emb.")
    signature = {"in_channels": conv_in[1], "channels": conv_in[0], "context": context}
    parts = {"unet"}
    if index.has("first_stage_model."):
        parts.add("vae")
    if sdxl:
        if index.has("conditioner.embedders.0.transformer."):
            parts.add("text_encoder")
        if index.has("conditioner.embedders.1.model.") or index.has("conditioner.embedders.0.model."):
            parts.add("text_encoder_2")
    elif index.has("cond_stage_model."):
        parts.add("text_encoder")
    prediction = None
    if "v_pred" in index.shapes:
        prediction = "v"
    return Checkpoint(path, "sdxl" if sdxl else "sd", frozenset(parts), signature, dtype, prediction=prediction)


DENOISER_CONFIG = {"sd": "unet", "sdxl": "unet", "sd3": "transformer", "flux": "transformer", "wan": "transformer"}


def config_signature(folder: Path, family: str, component: str | None = None) -> dict[str, int] | None:
    """The sizes ``inspect_checkpoint`` reads from a checkpoint, as a diffusers configuration folder has them
    (in ``component``, default the family's denoiser folder); None when there is no such configuration."""
    try:
        where = folder / (component or DENOISER_CONFIG[family]) / "config.json"
        config = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        return None
    if family in ("sd", "sdxl"):
        context = config.get("cross_attention_dim", 0)
        return {"in_channels": int(config.get("in_channels", 4)), "channels": int(config["block_out_channels"][0]),
                "context": int(context[0] if isinstance(context, list) else context)}
    hidden = int(config.get("num_attention_heads", 0)) * int(config.get("attention_head_dim", 0))
    if family == "flux":
        return {"in_channels": int(config.get("in_channels", 64)), "hidden": hidden,
                "layers": int(config.get("num_layers", 19)), "single_layers": int(config.get("num_single_layers", 38)),
                "guidance": int(bool(config.get("guidance_embeds", False)))}
    if family == "sd3":
        return {"in_channels": int(config.get("in_channels", 16)), "hidden": hidden,
                "layers": int(config.get("num_layers", 18)),
                "dual_layers": len(config.get("dual_attention_layers") or ())}
    return {"in_channels": int(config.get("in_channels", 16)), "hidden": hidden,
            "layers": int(config.get("num_layers", 30))}


def describe(signature: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {value}" for name, value in signature.items())
