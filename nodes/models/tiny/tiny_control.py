"""Tiny image-control models (ControlNets, an IP-Adapter, an inpainting checkpoint) built from configs with fixed
random weights, in the layouts real downloads have.

Each fits the tiny pipeline of its family in ``tiny_image`` (same UNet configuration), so the real diffusers code
paths run: ``ControlNetModel.from_pretrained`` on a diffusers folder, ``load_ip_adapter`` on an
``ip-adapter_*.safetensors`` file with its ``image_encoder`` folder, as ``h94/IP-Adapter`` lays them out. A real
ControlNet starts with zero convolutions (no effect until trained); the tiny ones get small random values there, so
a test can see that a control changes the picture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodeforge.nodes.models.catalogue.resolver import TinyModel
from nodeforge.nodes.models.tiny.tiny_image import build_sd, sd_unet, sdxl_unet

IP_ADAPTER_FILE = "models/ip-adapter_sd15.safetensors"
IP_ADAPTER_ENCODER = "models/image_encoder"


def _wake_zero_convolutions(controlnet: Any) -> None:
    """Small random weights in the output convolutions a fresh ControlNet zeroes, so its control has an effect."""
    import torch

    with torch.no_grad():
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            module.weight.normal_(0.0, 0.5)
            module.bias.normal_(0.0, 0.1)


def build_controlnet(folder: Path) -> None:
    """A ControlNet for tiny/sd: the UNet's down half plus a conditioning embedding that halves the control
    picture once, as the tiny VAE does (real ones take the picture at 8x the latent's size)."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(sd_unet(), conditioning_embedding_out_channels=(8, 16))
    _wake_zero_convolutions(controlnet)
    controlnet.save_pretrained(str(folder))


def build_controlnet_sdxl(folder: Path) -> None:
    """A ControlNet for tiny/sdxl (text_time conditioning, linear projections)."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(sdxl_unet(), conditioning_embedding_out_channels=(8, 16))
    _wake_zero_convolutions(controlnet)
    controlnet.save_pretrained(str(folder))


def build_controlnet_union(folder: Path) -> None:
    """A ControlNet-Union (ProMax layout: one model, a control type per picture) for tiny/sdxl."""
    from diffusers import ControlNetUnionModel

    template = ControlNetUnionModel.from_unet(sdxl_unet(), conditioning_embedding_out_channels=(8, 16),
                                              load_weights_from_unet=False)
    controlnet = ControlNetUnionModel.from_config(template.config, num_trans_channel=32, num_trans_head=2,
                                                  num_proj_channel=32)
    _wake_zero_convolutions(controlnet)
    controlnet.save_pretrained(str(folder))


def build_controlnet_flux(folder: Path) -> None:
    """A Flux ControlNet for tiny/flux (one double and one single block, as the tiny transformer): it reads the
    control picture through the pipeline's VAE, as the InstantX and Shakker-Labs ones do."""
    import torch
    from diffusers import FluxControlNetModel

    controlnet = FluxControlNetModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                     attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                     pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    with torch.no_grad():
        for module in [*controlnet.controlnet_blocks, *controlnet.controlnet_single_blocks,
                       controlnet.controlnet_x_embedder]:
            module.weight.normal_(0.0, 0.5)
    controlnet.save_pretrained(str(folder))


def build_sd_inpainting(folder: Path) -> None:
    """tiny/sd with a 9-channel UNet (latents, mask, masked-image latents): the layout of SD inpainting
    checkpoints such as sd15-inpainting."""
    from diffusers import StableDiffusionInpaintPipeline

    build_sd(folder)
    pipe = StableDiffusionInpaintPipeline.from_pretrained(str(folder), safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.unet = sd_unet(in_channels=9)
    pipe.register_to_config(unet=("diffusers", "UNet2DConditionModel"))
    pipe.save_pretrained(str(folder))


def build_ip_adapter(folder: Path) -> None:
    """An IP-Adapter for tiny/sd in h94/IP-Adapter's layout: ``models/ip-adapter_sd15.safetensors`` (image
    projection to 4 tokens, a key/value pair per cross-attention layer) and ``models/image_encoder`` (CLIP vision
    with projection)."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8, projection_dim=16))
    encoder.save_pretrained(str(folder / IP_ADAPTER_ENCODER))
    unet = sd_unet()
    cross_dim = int(unet.config.cross_attention_dim)
    tensors: dict[str, Any] = {
        "image_proj.proj.weight": torch.randn(cross_dim * 4, 16) * 0.5,
        "image_proj.proj.bias": torch.zeros(cross_dim * 4),
        "image_proj.norm.weight": torch.ones(cross_dim),
        "image_proj.norm.bias": torch.zeros(cross_dim),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = _hidden_size(name, list(unet.config.block_out_channels))
        for part in ("to_k_ip", "to_v_ip"):
            tensors[f"ip_adapter.{key_id}.{part}.weight"] = torch.randn(hidden, cross_dim) * 0.5
        key_id += 2
    (folder / IP_ADAPTER_FILE).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / IP_ADAPTER_FILE))


def _hidden_size(processor: str, blocks: list[int]) -> int:
    """The width of the UNet block an attention processor sits in (as diffusers' IP-Adapter loader reads it)."""
    if processor.startswith("mid_block"):
        return blocks[-1]
    if processor.startswith("up_blocks"):
        return list(reversed(blocks))[int(processor[len("up_blocks.")])]
    return blocks[int(processor[len("down_blocks.")])]


TINY = {
    "controlnet": TinyModel("controlnet-sd", build_controlnet, "ControlNet for tiny/sd, random weights"),
    "controlnet-sdxl": TinyModel("controlnet-sdxl", build_controlnet_sdxl, "ControlNet for tiny/sdxl, random weights"),
    "controlnet-flux": TinyModel("controlnet-flux", build_controlnet_flux, "ControlNet for tiny/flux, random weights"),
    "controlnet-union": TinyModel("controlnet-union-sdxl", build_controlnet_union,
                                  "ControlNet-Union (ProMax layout) for tiny/sdxl, random weights"),
    "ip_adapter": TinyModel("ip-adapter-sd", build_ip_adapter,
                            "IP-Adapter for tiny/sd with its CLIP image encoder, h94 layout, random weights"),
    "sd-inpainting": TinyModel("sd", build_sd_inpainting, "tiny/sd with a 9-channel inpainting UNet, random weights"),
}
