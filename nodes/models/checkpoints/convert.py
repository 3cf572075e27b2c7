"""Diffusers pipelines and components -> the original single-file layout users' checkpoints have, and files of it.

``original_state_dict(pipe, family)`` is a whole pipeline as one A1111/ComfyUI checkpoint; ``component_state_dict``
is one component the way ComfyUI's split files hold it (a bare Flux/SD3/Wan transformer, an LDM VAE, a CLIP text
encoder in the Hugging Face layout of ``clip_l.safetensors``, a T5 as in ``t5xxl_*.safetensors``).
``save_checkpoint`` writes safetensors in fp32/fp16/bf16/fp8; ``save_gguf`` (gguf_file) writes city96's GGUF. The
names are the reverse of diffusers' single-file readers (layout_sd, layout_flow), so those readers give back the
same tensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.nodes.models.checkpoints.gguf_file import GGUF_QTYPES, gguf_architecture, save_gguf
from nodeforge.nodes.models.checkpoints.layout_common import ConversionError, StateDict

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["COMPONENT_KINDS", "DTYPES", "FAMILIES", "GGUF_QTYPES", "ConversionError", "cast_state",
           "component_kind", "component_state_dict", "gguf_architecture", "original_state_dict",
           "pipeline_family", "save_checkpoint", "save_gguf"]

FAMILIES = ("sd", "sdxl", "sd3", "flux", "wan")
COMPONENT_KINDS = ("unet", "vae", "clip", "open_clip", "t5", "sd3", "flux", "wan")
DTYPES = ("fp32", "fp16", "bf16", "fp8")
PIPELINE_PREFIXES = (("StableDiffusionXL", "sdxl"), ("StableDiffusion3", "sd3"), ("StableDiffusion", "sd"),
                     ("Flux", "flux"), ("Wan", "wan"))
KIND_OF_CLASS = {"UNet2DConditionModel": "unet", "AutoencoderKL": "vae", "CLIPTextModel": "clip",
                 "CLIPTextModelWithProjection": "clip", "T5EncoderModel": "t5", "UMT5EncoderModel": "t5",
                 "SD3Transformer2DModel": "sd3", "FluxTransformer2DModel": "flux", "WanTransformer3DModel": "wan"}
FP8_MAX = 448.0


def pipeline_family(pipe: Any) -> str:
    """The family of a diffusers pipeline object, from its class (StableDiffusionXLImg2ImgPipeline -> sdxl)."""
    name = type(pipe).__name__
    for prefix, family in PIPELINE_PREFIXES:
        if name.startswith(prefix):
            return family
    raise ConversionError(f"no original single-file layout for a {name} (families: {', '.join(FAMILIES)})")


def original_state_dict(pipe: Any, family: str | None = None) -> StateDict:
    """A whole pipeline in the original single-file names. sd: ``model.diffusion_model``, ``first_stage_model``,
    ``cond_stage_model.transformer`` (SD 1.x CLIP) or ``cond_stage_model.model`` (SD 2.x OpenCLIP); sdxl: the two
    ``conditioner.embedders``; sd3/flux: ``text_encoders.clip_l/clip_g/t5xxl.transformer``; wan: the transformer
    alone, bare (Wan files hold only it; its VAE and UMT5 are separate files)."""
    from nodeforge.nodes.models.checkpoints import layout_flow, layout_sd

    family = family or pipeline_family(pipe)
    if family == "sd":
        return layout_sd.sd_checkpoint(pipe)
    if family == "sdxl":
        return layout_sd.sdxl_checkpoint(pipe)
    if family == "sd3":
        return layout_flow.sd3_checkpoint(pipe)
    if family == "flux":
        return layout_flow.flux_checkpoint(pipe)
    if family == "wan":
        return layout_flow.wan_to_original(pipe.transformer.state_dict())
    raise ConversionError(f"unknown family '{family}' (families: {', '.join(FAMILIES)})")


def component_kind(module: Any) -> str:
    """What kind of component a model object is, from its class; ConversionError for one without a layout."""
    name = type(module).__name__
    if name not in KIND_OF_CLASS:
        raise ConversionError(f"no original layout for a {name} component (known: {', '.join(sorted(KIND_OF_CLASS))})")
    return KIND_OF_CLASS[name]


def component_state_dict(module: Any, kind: str | None = None) -> StateDict:
    """One component in the names of the split files ComfyUI users have, without a prefix: ``unet`` and ``vae`` in
    LDM names, ``clip`` in the Hugging Face layout (``text_model.*``), ``open_clip`` in OpenCLIP names, ``t5`` as
    transformers stores it, ``flux``/``sd3``/``wan`` transformers in their original names. ``kind`` defaults to the
    one the module's class implies."""
    from nodeforge.nodes.models.checkpoints import layout_flow, layout_sd

    kind = kind or component_kind(module)
    if kind == "t5":
        return layout_flow.untied(module)
    state = module.state_dict()
    if kind == "unet":
        return layout_sd.unet_to_original(state, module.config)
    if kind == "vae":
        return layout_sd.vae_to_original(state, module.config)
    if kind == "clip":
        return layout_sd.hf_clip(state)
    if kind == "open_clip":
        return layout_sd.open_clip_to_original(state)
    if kind == "sd3":
        return layout_flow.sd3_to_original(state)
    if kind == "flux":
        return layout_flow.flux_to_original(state)
    if kind == "wan":
        return layout_flow.wan_to_original(state)
    raise ConversionError(f"unknown component kind '{kind}' (kinds: {', '.join(COMPONENT_KINDS)})")


def torch_dtype(name: str) -> torch.dtype:
    """fp32, fp16, bf16 or fp8 (``float8_e4m3fn``, the fp8 ComfyUI users store Flux and T5 in)."""
    import torch

    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}
    if name not in dtypes:
        raise ConversionError(f"unknown dtype '{name}' (dtypes: {', '.join(DTYPES)})")
    return dtypes[name]


def cast_state(state: Mapping[str, Tensor], dtype: str | None) -> StateDict:
    """Floating tensors in ``dtype`` (None keeps them). fp8 applies to matrices and convolutions; 1-D tensors
    (biases, norm scales) go to bf16, as fp8's 3 mantissa bits would move a norm scale of 1.0 by up to 6%; values
    are clamped to fp8's range (+-448) first, since a cast beyond it gives NaN."""
    import torch

    if dtype is None:
        return {key: tensor.detach().contiguous() for key, tensor in state.items()}
    target = torch_dtype(dtype)
    cast: StateDict = {}
    for key, tensor in state.items():
        tensor = tensor.detach()
        if tensor.is_floating_point():
            if target == torch.float8_e4m3fn and tensor.ndim >= 2:
                tensor = tensor.float().clamp(-FP8_MAX, FP8_MAX).to(target)
            else:
                tensor = tensor.to(torch.bfloat16 if target == torch.float8_e4m3fn else target)
        cast[key] = tensor.contiguous()
    return cast


def save_checkpoint(state: Mapping[str, Tensor], path: Path, dtype: str | None = None,
                    metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``state`` as one safetensors file, cast by ``cast_state``; written to a temporary file beside ``path``
    and renamed, so a reader never sees half a file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: tensor.cpu() for key, tensor in cast_state(state, dtype).items()}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(temporary), metadata={"format": "pt", **(metadata or {})})
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
