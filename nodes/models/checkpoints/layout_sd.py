"""Diffusers -> original (LDM, as A1111 and ComfyUI store them) tensor names for SD 1.x/2.x and SDXL.

Each function is the reverse of one of diffusers' single-file readers (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``, ``convert_open_clip_checkpoint``), so a file
written from these names reads back to the same tensors. Names are computed from the diffusers name and the block
layout in the model's config; a tensor that has no original name is a ConversionError, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nodeforge.nodes.models.checkpoints.layout_common import ConversionError, StateDict, with_prefix

if TYPE_CHECKING:
    from torch import Tensor

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
REFINER_OPEN_CLIP_PREFIX = "conditioner.embedders.0.model."

UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
            "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
            "class_embedding.linear_1": "label_emb.0.0", "class_embedding.linear_2": "label_emb.0.2",
            "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
          "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
UNET_BLOCK = re.compile(r"(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)")
UNET_MID = re.compile(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)")

VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
VAE_RULES = (
    (re.compile(r"(encoder|decoder)\.(conv_in|conv_out)\.(\w+)"), "{0}.{1}.{2}"),
    (re.compile(r"(encoder|decoder)\.conv_norm_out\.(\w+)"), "{0}.norm_out.{1}"),
    (re.compile(r"(quant_conv|post_quant_conv)\.(\w+)"), "{0}.{1}"),
)

OPEN_CLIP_TOP = {"text_model.embeddings.position_embedding.weight": "positional_embedding",
                 "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
                 "text_model.final_layer_norm.weight": "ln_final.weight",
                 "text_model.final_layer_norm.bias": "ln_final.bias"}
OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                   "self_attn.out_proj": "attn.out_proj"}
CLIP_LAYER = re.compile(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)")


def unet_to_original(state: Mapping[str, Tensor], config: Mapping[str, Any]) -> StateDict:
    """A ``UNet2DConditionModel`` state dict in LDM names (``input_blocks``, ``middle_block``, ``output_blocks``),
    without the ``model.diffusion_model.`` prefix."""
    per_block = _layers_per_block(config)
    with_attention = {int(key.split(".")[1]) for key in state if key.startswith("up_blocks.") and ".attentions." in key}
    return {_unet_name(key, per_block, with_attention): tensor for key, tensor in state.items()}


def _layers_per_block(config: Mapping[str, Any]) -> int:
    value = config.get("layers_per_block", 2)
    values = set(value) if isinstance(value, list | tuple) else {value}
    if len(values) != 1:
        raise ConversionError(f"UNet: layers_per_block {value} differs between blocks; the original layout needs one")
    return int(values.pop())


def _unet_name(key: str, per_block: int, with_attention: set[int]) -> str:
    stem, _, leaf = key.rpartition(".")
    if stem in UNET_TOP:
        return f"{UNET_TOP[stem]}.{leaf}"
    if match := UNET_BLOCK.fullmatch(key):
        side, block, kind, index, rest = match.group(1), int(match.group(2)), match.group(3), int(match.group(4)), \
            match.group(5)
        stride = per_block + 1
        if side == "down":
            if kind == "resnets":
                return f"input_blocks.{1 + block * stride + index}.0.{_resnet(rest, key)}"
            if kind == "attentions":
                return f"input_blocks.{1 + block * stride + index}.1.{rest}"
            if kind == "downsamplers" and rest.startswith("conv."):
                return f"input_blocks.{1 + block * stride + per_block}.0.op.{rest.removeprefix('conv.')}"
        else:
            if kind == "resnets":
                return f"output_blocks.{block * stride + index}.0.{_resnet(rest, key)}"
            if kind == "attentions":
                return f"output_blocks.{block * stride + index}.1.{rest}"
            if kind == "upsamplers" and rest.startswith("conv."):
                slot = 2 if block in with_attention else 1
                return f"output_blocks.{block * stride + per_block}.{slot}.{rest}"
    if match := UNET_MID.fullmatch(key):
        kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
        if kind == "attentions" and index == 0:
            return f"middle_block.1.{rest}"
        if kind == "resnets" and index in (0, 1):
            return f"middle_block.{2 * index}.{_resnet(rest, key)}"
    raise ConversionError(f"UNet: no original name for tensor '{key}'")


def _resnet(rest: str, key: str) -> str:
    layer, _, leaf = rest.partition(".")
    if layer not in RESNET:
        raise ConversionError(f"UNet: no original name for tensor '{key}'")
    return f"{RESNET[layer]}.{leaf}"


def vae_to_original(state: Mapping[str, Tensor], config: Mapping[str, Any]) -> StateDict:
    """An ``AutoencoderKL`` state dict in LDM names (``encoder.down.N.block``, ``decoder.up.N`` counted from the
    lowest resolution, 1x1-convolution attention), without the ``first_stage_model.`` prefix."""
    levels = len(config["up_block_types"])
    converted: StateDict = {}
    for key, tensor in state.items():
        name, as_conv = _vae_name(key, levels)
        converted[name] = tensor[:, :, None, None] if as_conv and tensor.ndim == 2 else tensor
    return converted


def _vae_name(key: str, levels: int) -> tuple[str, bool]:
    for pattern, template in VAE_RULES:
        if match := pattern.fullmatch(key):
            return template.format(*match.groups()), False
    parts = key.split(".")
    coder, rest = parts[0], parts[1:]
    if coder in ("encoder", "decoder") and len(rest) >= 4:
        group, leaf = rest[0], rest[-1]
        if group in ("down_blocks", "up_blocks"):
            level = int(rest[1]) if group == "down_blocks" else levels - 1 - int(rest[1])
            side = "down" if group == "down_blocks" else "up"
            if rest[2] == "resnets":
                layer = ".".join(rest[4:]).replace("conv_shortcut", "nin_shortcut")
                return f"{coder}.{side}.{level}.block.{rest[3]}.{layer}", False
            if rest[2] in ("downsamplers", "upsamplers") and rest[3:5] == ["0", "conv"]:
                sampler = "downsample" if side == "down" else "upsample"
                return f"{coder}.{side}.{level}.{sampler}.conv.{leaf}", False
        if group == "mid_block" and rest[1] == "resnets":
            layer = ".".join(rest[3:]).replace("conv_shortcut", "nin_shortcut")
            return f"{coder}.mid.block_{int(rest[2]) + 1}.{layer}", False
        if group == "mid_block" and rest[1:3] == ["attentions", "0"]:
            layer = ".".join(rest[3:-1])
            if layer in VAE_ATTENTION:
                return f"{coder}.mid.attn_1.{VAE_ATTENTION[layer]}.{leaf}", layer != "group_norm"
    raise ConversionError(f"VAE: no original name for tensor '{key}'")


def hf_clip(state: Mapping[str, Tensor]) -> StateDict:
    """A CLIP text encoder in the Hugging Face layout original files carry (``text_model.*`` and, with a
    projection, ``text_projection.weight``): transformers 5 saves ``CLIPTextModel`` without the ``text_model.``
    level, and every SD, SDXL, SD3 and Flux file (and ComfyUI's ``clip_l.safetensors``) has it."""
    return {key if key.startswith("text_model.") or key == "text_projection.weight" else f"text_model.{key}": tensor
            for key, tensor in state.items() if not key.endswith("position_ids")}


def open_clip_to_original(state: Mapping[str, Tensor]) -> StateDict:
    """A CLIP text encoder in OpenCLIP names (SD 2.x, SDXL's second encoder): ``resblocks`` with q, k and v fused
    into ``in_proj``, and ``text_projection`` stored as the transpose of the Linear weight."""
    import torch

    converted: StateDict = {}
    fused: dict[str, dict[str, Tensor]] = {}
    for key, tensor in hf_clip(state).items():
        if key == "text_projection.weight":
            converted["text_projection"] = tensor.T.contiguous()
        elif key in OPEN_CLIP_TOP:
            converted[OPEN_CLIP_TOP[key]] = tensor
        elif match := CLIP_LAYER.fullmatch(key):
            layer, module, leaf = match.groups()
            block = f"transformer.resblocks.{layer}"
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                fused.setdefault(f"{block}.attn.in_proj_{leaf}", {})[module[-6]] = tensor
            elif module in OPEN_CLIP_LAYER:
                converted[f"{block}.{OPEN_CLIP_LAYER[module]}.{leaf}"] = tensor
            else:
                raise ConversionError(f"OpenCLIP: no original name for tensor '{key}'")
        else:
            raise ConversionError(f"OpenCLIP: no original name for tensor '{key}'")
    for name, parts in fused.items():
        if set(parts) != {"q", "k", "v"}:
            raise ConversionError(f"OpenCLIP: '{name}' needs q, k and v projections; found {sorted(parts)}")
        converted[name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return converted


def open_clip_from_original(state: Mapping[str, Tensor]) -> StateDict:
    """OpenCLIP names -> the Hugging Face ``text_model.*`` layout (the reverse of ``open_clip_to_original``):
    ``in_proj`` split into q, k and v, ``text_projection`` transposed back into a Linear weight. Tensors that are
    not the text tower (OpenCLIP's ``logit_scale``, attention masks) are left out."""
    top = {original: name for name, original in OPEN_CLIP_TOP.items()}
    layers = {original: name for name, original in OPEN_CLIP_LAYER.items()}
    converted: StateDict = {}
    for key, tensor in state.items():
        if key == "text_projection":
            converted["text_projection.weight"] = tensor.T.contiguous()
        elif key in top:
            converted[top[key]] = tensor
        elif key.startswith("transformer.resblocks."):
            layer, rest = key.removeprefix("transformer.resblocks.").split(".", 1)
            module, leaf = rest.rsplit(".", 1)
            target = f"text_model.encoder.layers.{layer}"
            if module == "attn" and leaf in ("in_proj_weight", "in_proj_bias"):
                for name, part in zip(("q", "k", "v"), tensor.chunk(3, dim=0), strict=True):
                    converted[f"{target}.self_attn.{name}_proj.{leaf.removeprefix('in_proj_')}"] = part.clone()
            elif module in layers:
                converted[f"{target}.{layers[module]}.{leaf}"] = tensor
            else:
                raise ConversionError(f"OpenCLIP: no Hugging Face name for tensor '{key}'")
    return converted


def is_open_clip(text_encoder: Any) -> bool:
    """SD 2.x's text encoder is OpenCLIP ViT-H (GELU); SD 1.x's is OpenAI CLIP ViT-L (quick GELU)."""
    return str(getattr(text_encoder.config, "hidden_act", "")) == "gelu"


def sd_checkpoint(pipe: Any) -> StateDict:
    """A whole SD 1.x/2.x pipeline as one original checkpoint (UNet, VAE, CLIP or OpenCLIP text encoder)."""
    state = _unet_and_vae(pipe)
    encoder = pipe.text_encoder.state_dict()
    if is_open_clip(pipe.text_encoder):
        state |= with_prefix(SD2_CLIP_PREFIX, open_clip_to_original(encoder))
    else:
        state |= with_prefix(SD1_CLIP_PREFIX, hf_clip(encoder))
    return state


def sdxl_checkpoint(pipe: Any) -> StateDict:
    """A whole SDXL pipeline as one original checkpoint: CLIP-L as ``embedders.0``, OpenCLIP bigG as ``embedders.1``
    (a refiner, which has only the second encoder, keeps it as ``embedders.0`` the way its checkpoints do)."""
    state = _unet_and_vae(pipe)
    big = open_clip_to_original(pipe.text_encoder_2.state_dict())
    if getattr(pipe, "text_encoder", None) is None:
        return state | with_prefix(REFINER_OPEN_CLIP_PREFIX, big)
    state |= with_prefix(SDXL_CLIP_PREFIX, hf_clip(pipe.text_encoder.state_dict()))
    return state | with_prefix(SDXL_OPEN_CLIP_PREFIX, big)


def _unet_and_vae(pipe: Any) -> StateDict:
    state = with_prefix(UNET_PREFIX, unet_to_original(pipe.unet.state_dict(), pipe.unet.config))
    return state | with_prefix(VAE_PREFIX, vae_to_original(pipe.vae.state_dict(), pipe.vae.config))
