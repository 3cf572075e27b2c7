"""The tiny pipelines converted to the original single-file layout read back through diffusers' own single-file
readers to the very same tensors, with no tensor left over either way; a whole tiny/sd checkpoint loads with
``from_single_file`` and draws the same pixels as the diffusers folder; files hold the dtype they claim."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from diffusers.loaders import single_file_utils as readers
from safetensors import safe_open

from nodeforge.nodes.models.checkpoints.convert import (
    ConversionError,
    component_state_dict,
    original_state_dict,
    save_checkpoint,
)
from nodeforge.nodes.models.checkpoints.layout_flow import flux_to_original, transformer_from_original, untied
from tests.nodes.convert_support import assert_same, tiny, under, values

__all__ = ["tiny"]


def _clip(state: dict[str, torch.Tensor], prefix: str | None = None) -> dict[str, torch.Tensor]:
    """diffusers' CLIP reader; transformers 5's CLIPTextModel has no ``text_model.`` level (as diffusers does)."""
    return dict(readers.convert_ldm_clip_checkpoint(state, prefix))


def _flat(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key.removeprefix("text_model."): tensor for key, tensor in state.items()}


def test_sd_checkpoint_reads_back_exactly(tiny: Callable[[str], Path]) -> None:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny("sd")))
    state = original_state_dict(pipe, "sd")
    groups = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model.")
    assert all(key.startswith(groups) for key in state)
    assert "model.diffusion_model.input_blocks.3.1.proj_in.weight" in state          # down block 1's attention
    unet = readers.convert_ldm_unet_checkpoint(dict(state), pipe.unet.config)
    vae = readers.convert_ldm_vae_checkpoint(dict(state), pipe.vae.config)
    clip = _flat(_clip(dict(state)))
    assert_same(unet, pipe.unet.state_dict(), "unet")
    assert_same(vae, pipe.vae.state_dict(), "vae")
    assert_same(clip, pipe.text_encoder.state_dict(), "clip")
    assert len(state) == len(unet) + len(vae) + len(clip)       # renames only: each file tensor read exactly once
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (64, 64, 1, 1)   # LDM's 1x1 conv


def test_sd2_text_encoder_is_written_as_open_clip(tiny: Callable[[str], Path]) -> None:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny("sd")))
    config = CLIPTextConfig(**{**pipe.text_encoder.config.to_dict(), "hidden_act": "gelu"})
    torch.manual_seed(0)
    pipe.text_encoder = CLIPTextModel(config)                    # SD 2.x: OpenCLIP ViT-H, plain GELU
    state = original_state_dict(pipe, "sd")
    text = under(state, "cond_stage_model.")
    assert "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight" in text
    assert text["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"].shape == (96, 32)
    converted = readers.convert_open_clip_checkpoint(pipe.text_encoder, text, prefix="cond_stage_model.model.")
    assert_same(_flat(converted), pipe.text_encoder.state_dict(), "OpenCLIP")
    assert values(text) == values(pipe.text_encoder.state_dict())


def test_sdxl_checkpoint_reads_back_exactly(tiny: Callable[[str], Path]) -> None:
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny("sdxl")))
    state = original_state_dict(pipe, "sdxl")
    assert_same(readers.convert_ldm_unet_checkpoint(dict(state), pipe.unet.config), pipe.unet.state_dict(), "unet")
    assert "model.diffusion_model.label_emb.0.0.weight" in state           # SDXL's added (text_time) embedding
    assert_same(readers.convert_ldm_vae_checkpoint(dict(state), pipe.vae.config), pipe.vae.state_dict(), "vae")
    clip = _flat(_clip(under(state, "conditioner.embedders.0.transformer.")))
    assert_same(clip, pipe.text_encoder.state_dict(), "CLIP-L")
    big = under(state, "conditioner.embedders.1.model.")
    assert big["conditioner.embedders.1.model.text_projection"].equal(pipe.text_encoder_2.text_projection.weight.T)
    converted = readers.convert_open_clip_checkpoint(pipe.text_encoder_2, big, prefix="conditioner.embedders.1.model.")
    assert_same(converted, pipe.text_encoder_2.state_dict(), "OpenCLIP bigG")
    assert values(state) == sum(values(part.state_dict()) for part in (pipe.unet, pipe.vae, pipe.text_encoder,
                                                                       pipe.text_encoder_2))


def test_sd3_checkpoint_reads_back_exactly(tiny: Callable[[str], Path]) -> None:
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(str(tiny("sd3")))
    state = original_state_dict(pipe, "sd3")
    transformer = under(state, "model.diffusion_model.")
    assert "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight" in transformer
    assert values(transformer) == values(pipe.transformer.state_dict())
    reference = pipe.transformer.state_dict()
    assert_same(readers.convert_sd3_transformer_checkpoint_to_diffusers(transformer), reference, "transformer")
    assert_same(transformer_from_original(under(state, "model.diffusion_model."), "sd3"), reference, "ours")
    assert_same(readers.convert_ldm_vae_checkpoint(dict(state), pipe.vae.config), pipe.vae.state_dict(), "vae")
    for name, encoder in (("clip_l", pipe.text_encoder), ("clip_g", pipe.text_encoder_2)):
        prefix = f"text_encoders.{name}.transformer."
        assert_same(_clip(under(state, prefix), prefix), encoder.state_dict(), name)
    assert_same(readers.convert_sd3_t5_checkpoint_to_diffusers(dict(state)), untied(pipe.text_encoder_3), "t5xxl")
    assert "text_encoders.t5xxl.transformer.encoder.embed_tokens.weight" not in state   # tied to shared, once


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_flux_transformer_at_full_width_reads_back_through_diffusers(prefix: str) -> None:
    """diffusers' Flux reader hard-codes the released width (3072 = 24 heads x 128, MLP 4x), so its names and
    splits are checked on a state dict with a Flux-dev block layout at that width; every tensor is one column wide
    (the reader splits rows only), which keeps it to a few hundred kilobytes."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        model = FluxTransformer2DModel(num_layers=2, num_single_layers=2, guidance_embeds=True, in_channels=4,
                                       joint_attention_dim=32, pooled_projection_dim=32)
    generator = torch.Generator().manual_seed(0)
    reference = {key: torch.randn(tensor.shape[:1] + (1,) * (tensor.ndim > 1), generator=generator)
                 for key, tensor in model.state_dict().items()}
    original = {prefix + key: tensor for key, tensor in flux_to_original(reference).items()}
    assert f"{prefix}single_blocks.1.linear1.weight" in original and f"{prefix}guidance_in.in_layer.bias" in original
    assert values(original) == values(reference)
    assert_same(readers.convert_flux_transformer_checkpoint_to_diffusers(dict(original)), reference, "diffusers")
    assert_same(transformer_from_original(original, "flux"), reference, "ours")


def test_tiny_flux_checkpoint_reads_back_exactly(tiny: Callable[[str], Path]) -> None:
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(str(tiny("flux")))
    state = original_state_dict(pipe, "flux")
    transformer = under(state, "model.diffusion_model.")
    assert transformer["model.diffusion_model.single_blocks.0.linear1.weight"].shape == (32 * 3 + 128, 32)
    assert_same(transformer_from_original(transformer, "flux"), pipe.transformer.state_dict(), "transformer")
    assert_same(readers.convert_ldm_vae_checkpoint(dict(state), pipe.vae.config), pipe.vae.state_dict(), "vae")
    prefix = "text_encoders.clip_l.transformer."
    assert_same(_flat(_clip(under(state, prefix), prefix)), pipe.text_encoder.state_dict(), "clip_l")
    assert_same(readers.convert_sd3_t5_checkpoint_to_diffusers(dict(state)), untied(pipe.text_encoder_2), "t5xxl")
    bare = component_state_dict(pipe.transformer)                     # ComfyUI's flux1-dev.safetensors: no prefix
    assert set(bare) == {key.removeprefix("model.diffusion_model.") for key in transformer}


def test_wan_transformer_reads_back_exactly(tiny: Callable[[str], Path]) -> None:
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel.from_pretrained(str(tiny("wan")), subfolder="transformer")
    original = component_state_dict(model)
    assert {"head.modulation", "blocks.0.self_attn.q.weight", "blocks.0.norm3.weight"} <= set(original)
    assert_same(readers.convert_wan_transformer_to_diffusers(dict(original)), model.state_dict(), "wan")
    assert len(original) == len(model.state_dict())


def test_unknown_tensors_are_an_error_not_dropped(tiny: Callable[[str], Path]) -> None:
    from diffusers import FluxTransformer2DModel

    model = FluxTransformer2DModel.from_pretrained(str(tiny("flux")), subfolder="transformer")
    state = dict(model.state_dict())
    state["transformer_blocks.0.extra.weight"] = torch.zeros(2)
    with pytest.raises(ConversionError, match=r"no original name for 1 tensor\(s\): transformer_blocks.0.extra"):
        flux_to_original(state)
    del state["transformer_blocks.0.extra.weight"], state["transformer_blocks.0.attn.to_k.weight"]
    with pytest.raises(ConversionError, match="double_blocks.0.img_attn.qkv.weight.*missing .*to_k.weight"):
        flux_to_original(state)


def test_sd_single_file_draws_the_same_pixels(tiny: Callable[[str], Path], tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    folder = tiny("sd")
    pipe = StableDiffusionPipeline.from_pretrained(str(folder))
    checkpoint = save_checkpoint(original_state_dict(pipe), tmp_path / "tiny-sd.safetensors")
    loaded = StableDiffusionPipeline.from_single_file(str(checkpoint), config=str(folder), local_files_only=True)
    for name in ("unet", "vae", "text_encoder"):
        assert_same(getattr(loaded, name).state_dict(), getattr(pipe, name).state_dict(), name)

    def draw(p: StableDiffusionPipeline) -> torch.Tensor:
        images = p("a red fox", height=64, width=64, num_inference_steps=2, guidance_scale=4.0, output_type="pt",
                   generator=torch.Generator().manual_seed(7)).images
        return (images.clamp(0, 1) * 255).round().byte()

    reference = draw(pipe)
    assert reference.float().std() > 0 and draw(loaded).equal(reference)


@pytest.mark.parametrize(("dtype", "matrices", "vectors"), [("fp16", torch.float16, torch.float16),
                                                            ("bf16", torch.bfloat16, torch.bfloat16),
                                                            ("fp8", torch.float8_e4m3fn, torch.bfloat16)])
def test_files_hold_the_dtype_they_claim(tiny: Callable[[str], Path], tmp_path: Path, dtype: str,
                                         matrices: torch.dtype, vectors: torch.dtype) -> None:
    from diffusers import SD3Transformer2DModel

    folder = tiny("sd3")
    model = SD3Transformer2DModel.from_pretrained(str(folder), subfolder="transformer")
    original = component_state_dict(model)
    path = save_checkpoint(original, tmp_path / f"sd3-{dtype}.safetensors", dtype)
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]          # the temporary file is gone
    with safe_open(str(path), "pt") as stored:
        written = {key: stored.get_tensor(key) for key in stored.keys()}        # noqa: SIM118 - not a dict
    assert sorted(written) == sorted(original)
    for key, tensor in written.items():
        assert tensor.dtype == (matrices if tensor.ndim >= 2 else vectors), key
        assert torch.allclose(tensor.float(), original[key], rtol=2**-4, atol=2**-10), key
    loaded = SD3Transformer2DModel.from_single_file(str(path), config=str(folder), subfolder="transformer",
                                                    torch_dtype=torch.float32, local_files_only=True)
    upcast = readers.convert_sd3_transformer_checkpoint_to_diffusers({k: v.float() for k, v in written.items()})
    assert_same(loaded.state_dict(), upcast, "loaded")
