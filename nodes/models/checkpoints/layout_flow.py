"""Diffusers <-> original tensor names for the flow-matching transformers: SD3/3.5 (MMDiT ``joint_blocks``), Flux
(``double_blocks``/``single_blocks``, as Black Forest Labs and ComfyUI store it) and Wan 2.x (``blocks``,
``head``), plus the text encoders SD3 and Flux single files carry (``text_encoders.clip_l/clip_g/t5xxl``).

The SD3 and Flux rules are tables (see layout_common) read both ways: ``to_original`` is the reverse of diffusers'
``convert_sd3_transformer_checkpoint_to_diffusers`` and ``convert_flux_transformer_checkpoint_to_diffusers``, and
``transformer_from_original`` is the forward direction sized from the tensors themselves. That direction exists
because diffusers' Flux reader assumes the released model's width (3072, hard-coded), so it cannot read a Flux of
any other width, the tiny one included. Wan is a rename; diffusers' ``convert_wan_transformer_to_diffusers`` reads
it for any size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nodeforge.nodes.models.checkpoints.layout_common import (
    ConversionError,
    Rule,
    StateDict,
    block_numbers,
    from_original,
    linear,
    to_original,
    with_prefix,
)
from nodeforge.nodes.models.checkpoints.layout_sd import UNET_PREFIX, VAE_PREFIX, hf_clip, vae_to_original

if TYPE_CHECKING:
    from torch import Tensor

TEXT_ENCODERS = "text_encoders."
QKV = ("to_q", "to_k", "to_v")
ADDED_QKV = ("add_q_proj", "add_k_proj", "add_v_proj")
WAN_TOP = {"patch_embedding": "patch_embedding", "proj_out": "head.head",
           "condition_embedder.time_embedder.linear_1": "time_embedding.0",
           "condition_embedder.time_embedder.linear_2": "time_embedding.2",
           "condition_embedder.text_embedder.linear_1": "text_embedding.0",
           "condition_embedder.text_embedder.linear_2": "text_embedding.2",
           "condition_embedder.time_proj": "time_projection.1"}
WAN_ATTENTION = (("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "o"), ("norm_q", "norm_q"),
                 ("norm_k", "norm_k"))
WAN_BLOCK = {"ffn.net.0.proj": "ffn.0", "ffn.net.2": "ffn.2", "norm2": "norm3",
             **{f"{attn}.{ours}": f"{theirs}.{name}" for ours, name in WAN_ATTENTION
                for attn, theirs in (("attn1", "self_attn"), ("attn2", "cross_attn"))}}


def _parts(prefix: str, names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}{name}" for name in names)


def flux_rules(double: list[int], single: list[int]) -> list[Rule]:
    """Flux's names: fused q, k, v per stream, ``linear1`` = q, k, v and the MLP input of a single block."""
    rules = [*linear("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
             *linear("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
             *linear("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
             *linear("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
             *linear("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
             *linear("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
             *linear("txt_in", "context_embedder"), *linear("img_in", "x_embedder"),
             *linear("final_layer.linear", "proj_out"),
             *linear("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True)]
    for i in double:
        ours, theirs = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        rules += [*linear(f"{theirs}img_mod.lin", f"{ours}norm1.linear"),
                  *linear(f"{theirs}txt_mod.lin", f"{ours}norm1_context.linear"),
                  *linear(f"{theirs}img_attn.qkv", *_parts(f"{ours}attn.", QKV)),
                  *linear(f"{theirs}txt_attn.qkv", *_parts(f"{ours}attn.", ADDED_QKV)),
                  Rule(f"{theirs}img_attn.norm.query_norm.scale", (f"{ours}attn.norm_q.weight",)),
                  Rule(f"{theirs}img_attn.norm.key_norm.scale", (f"{ours}attn.norm_k.weight",)),
                  Rule(f"{theirs}txt_attn.norm.query_norm.scale", (f"{ours}attn.norm_added_q.weight",)),
                  Rule(f"{theirs}txt_attn.norm.key_norm.scale", (f"{ours}attn.norm_added_k.weight",)),
                  *linear(f"{theirs}img_mlp.0", f"{ours}ff.net.0.proj"),
                  *linear(f"{theirs}img_mlp.2", f"{ours}ff.net.2"),
                  *linear(f"{theirs}txt_mlp.0", f"{ours}ff_context.net.0.proj"),
                  *linear(f"{theirs}txt_mlp.2", f"{ours}ff_context.net.2"),
                  *linear(f"{theirs}img_attn.proj", f"{ours}attn.to_out.0"),
                  *linear(f"{theirs}txt_attn.proj", f"{ours}attn.to_add_out")]
    for i in single:
        ours, theirs = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        rules += [*linear(f"{theirs}modulation.lin", f"{ours}norm.linear"),
                  *linear(f"{theirs}linear1", *_parts(f"{ours}attn.", QKV), f"{ours}proj_mlp"),
                  Rule(f"{theirs}norm.query_norm.scale", (f"{ours}attn.norm_q.weight",)),
                  Rule(f"{theirs}norm.key_norm.scale", (f"{ours}attn.norm_k.weight",)),
                  *linear(f"{theirs}linear2", f"{ours}proj_out")]
    return rules


def sd3_rules(layers: list[int]) -> list[Rule]:
    """SD3's names: ``x_block`` is the image stream, ``context_block`` the text stream; the last block's text stream
    keeps only its modulation (two halves, swapped as the final layer's are); 3.5 Medium adds ``attn2``."""
    rules = [Rule("pos_embed", ("pos_embed.pos_embed",)), *linear("x_embedder.proj", "pos_embed.proj"),
             *linear("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
             *linear("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
             *linear("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
             *linear("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
             *linear("context_embedder", "context_embedder"), *linear("final_layer.linear", "proj_out"),
             *linear("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True)]
    last = layers[-1] if layers else -1
    for i in layers:
        ours, x, context = f"transformer_blocks.{i}.", f"joint_blocks.{i}.x_block.", f"joint_blocks.{i}.context_block."
        rules += [*linear(f"{x}attn.qkv", *_parts(f"{ours}attn.", QKV)),
                  *linear(f"{context}attn.qkv", *_parts(f"{ours}attn.", ADDED_QKV)),
                  Rule(f"{x}attn.ln_q.weight", (f"{ours}attn.norm_q.weight",)),
                  Rule(f"{x}attn.ln_k.weight", (f"{ours}attn.norm_k.weight",)),
                  Rule(f"{context}attn.ln_q.weight", (f"{ours}attn.norm_added_q.weight",)),
                  Rule(f"{context}attn.ln_k.weight", (f"{ours}attn.norm_added_k.weight",)),
                  *linear(f"{x}attn.proj", f"{ours}attn.to_out.0"),
                  *linear(f"{context}attn.proj", f"{ours}attn.to_add_out"),
                  *linear(f"{x}attn2.qkv", *_parts(f"{ours}attn2.", QKV)),
                  Rule(f"{x}attn2.ln_q.weight", (f"{ours}attn2.norm_q.weight",)),
                  Rule(f"{x}attn2.ln_k.weight", (f"{ours}attn2.norm_k.weight",)),
                  *linear(f"{x}attn2.proj", f"{ours}attn2.to_out.0"),
                  *linear(f"{x}adaLN_modulation.1", f"{ours}norm1.linear"),
                  *linear(f"{context}adaLN_modulation.1", f"{ours}norm1_context.linear", swap=i == last),
                  *linear(f"{x}mlp.fc1", f"{ours}ff.net.0.proj"), *linear(f"{x}mlp.fc2", f"{ours}ff.net.2"),
                  *linear(f"{context}mlp.fc1", f"{ours}ff_context.net.0.proj"),
                  *linear(f"{context}mlp.fc2", f"{ours}ff_context.net.2")]
    return rules


def flux_to_original(state: Mapping[str, Tensor]) -> StateDict:
    """A ``FluxTransformer2DModel`` state dict in Flux's own names (bare, as ComfyUI's ``flux1-dev.safetensors``)."""
    rules = flux_rules(block_numbers(state, "transformer_blocks."), block_numbers(state, "single_transformer_blocks."))
    return to_original(state, rules, "Flux transformer")


def sd3_to_original(state: Mapping[str, Tensor]) -> StateDict:
    """An ``SD3Transformer2DModel`` state dict in MMDiT names (bare; single files put it under
    ``model.diffusion_model.``)."""
    return to_original(state, sd3_rules(block_numbers(state, "transformer_blocks.")), "SD3 transformer")


def wan_to_original(state: Mapping[str, Tensor]) -> StateDict:
    """A ``WanTransformer3DModel`` state dict in Wan's names (text-to-video; the image embedder of Wan 2.1 I2V and
    VACE blocks are not mapped and raise)."""
    converted: StateDict = {}
    for key, tensor in state.items():
        converted[_wan_name(key)] = tensor
    return converted


def _wan_name(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    stem, _, leaf = key.rpartition(".")
    if stem in WAN_TOP:
        return f"{WAN_TOP[stem]}.{leaf}"
    head, _, rest = key.partition(".")
    number, _, inner = rest.partition(".")
    if head == "blocks" and number.isdigit():
        if inner == "scale_shift_table":
            return f"blocks.{number}.modulation"
        layer, _, leaf = inner.rpartition(".")
        if layer in WAN_BLOCK:
            return f"blocks.{number}.{WAN_BLOCK[layer]}.{leaf}"
    raise ConversionError(f"Wan transformer: no original name for tensor '{key}'")


def transformer_from_original(state: Mapping[str, Tensor], family: str) -> StateDict:
    """Original Flux or SD3 names (bare or under ``model.diffusion_model.``) -> diffusers names, sized from the
    tensors: the reader for widths diffusers' own Flux reader does not handle. Tensors may be GGUF parameters
    (``load_gguf_checkpoint``): they are split by rows, which keeps their quantization."""
    bare = {key.removeprefix(UNET_PREFIX): tensor for key, tensor in state.items()}
    if family == "flux":
        if "img_in.weight" not in bare:
            raise ConversionError("Flux transformer: 'img_in.weight' is missing; is this a Flux transformer?")
        rules = flux_rules(block_numbers(bare, "double_blocks."), block_numbers(bare, "single_blocks."))
        return from_original(bare, rules, int(bare["img_in.weight"].shape[0]), "Flux transformer")
    if family == "sd3":
        if "context_embedder.weight" not in bare:
            raise ConversionError("SD3 transformer: 'context_embedder.weight' is missing; is this an SD3 transformer?")
        rules = sd3_rules(block_numbers(bare, "joint_blocks."))
        return from_original(bare, rules, int(bare["context_embedder.weight"].shape[0]), "SD3 transformer")
    raise ConversionError(f"no original-layout reader for family '{family}' (flux, sd3)")


def untied(module: Any) -> StateDict:
    """A module's state dict with tied tensors once (T5's ``encoder.embed_tokens`` is ``shared``, which is what
    T5 files keep)."""
    seen: set[int] = set()
    state: StateDict = {}
    for key, tensor in module.state_dict(keep_vars=True).items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        state[key] = tensor.detach()
    return state


def sd3_checkpoint(pipe: Any) -> StateDict:
    """A whole SD3 pipeline as one file the way SD3's ``*_incl_clips_t5xxl`` files hold it."""
    state = with_prefix(UNET_PREFIX, sd3_to_original(pipe.transformer.state_dict()))
    state |= with_prefix(VAE_PREFIX, vae_to_original(pipe.vae.state_dict(), pipe.vae.config))
    state |= with_prefix(f"{TEXT_ENCODERS}clip_l.transformer.", hf_clip(pipe.text_encoder.state_dict()))
    state |= with_prefix(f"{TEXT_ENCODERS}clip_g.transformer.", hf_clip(pipe.text_encoder_2.state_dict()))
    if getattr(pipe, "text_encoder_3", None) is not None:
        state |= with_prefix(f"{TEXT_ENCODERS}t5xxl.transformer.", untied(pipe.text_encoder_3))
    return state


def flux_checkpoint(pipe: Any) -> StateDict:
    """A whole Flux pipeline as one file the way ComfyUI saves a checkpoint (transformer, VAE, CLIP-L and T5)."""
    state = with_prefix(UNET_PREFIX, flux_to_original(pipe.transformer.state_dict()))
    state |= with_prefix(VAE_PREFIX, vae_to_original(pipe.vae.state_dict(), pipe.vae.config))
    state |= with_prefix(f"{TEXT_ENCODERS}clip_l.transformer.", hf_clip(pipe.text_encoder.state_dict()))
    return state | with_prefix(f"{TEXT_ENCODERS}t5xxl.transformer.", untied(pipe.text_encoder_2))
