"""A diffusion node's run with one of ComfyUI's samplers (the node's ``sampler`` and ``sigma_schedule`` inputs).

``ComfySampling`` is made per run: the ``KSamplerScheduler`` to swap into the pipeline, and what the pipeline call
needs so the run starts where ComfyUI's would — the seed's start noise as ``latents`` for text to image (packed
for Flux), and for image to image the picture's latent encoded as ComfyUI encodes (the VAE's mean, not a sample)
with ``strength`` 1 for the pipeline, because the plan's ``denoise`` already chose the tail of the schedule.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from nodeforge.nodes.models.diffusion.ksampling.pipeline_scheduler import KSamplerScheduler, Packing, SamplingPlan
from nodeforge.nodes.models.diffusion.ksampling.spaces import space_for

if TYPE_CHECKING:
    from nodeforge.nodes.models.diffusion.pipelines import DiffusionModel


@dataclass(frozen=True)
class ComfySampling:
    """The scheduler of one run and how it changes the pipeline call."""

    scheduler: KSamplerScheduler
    task: str
    family: str

    def call_arguments(self, pipe: Any, call: Mapping[str, Any]) -> dict[str, Any]:
        """``call`` with the start latents (text) or the encoded picture and strength 1 (image); run inside the
        pipeline's memory placement, since encoding uses its VAE."""
        arguments = dict(call)
        if self.task == "text":
            arguments["latents"] = self.scheduler.start_latents(self.scheduler.packing.shape if self.scheduler.packing
                                                                else _latent_shape(pipe, self.family, call))
            return arguments
        arguments["image"] = encode_picture(pipe, self.family, call["image"])
        arguments["strength"] = 1.0
        if self.task == "inpaint":  # ComfyUI inpaints with the image-to-image loop and a noise mask
            mask = arguments.pop("mask_image")
            self.scheduler.mask = latent_mask(mask, arguments["image"])
            accepted = inspect.signature(type(pipe).__call__).parameters
            arguments = {key: value for key, value in arguments.items() if key in accepted}
        return arguments


def comfy_sampling(model: DiffusionModel, *, sampler: str, schedule: str, steps: int, seed: int, task: str,
                   size: tuple[int, int], count: int, denoise: float = 1.0,
                   shift: float | None = None) -> ComfySampling:
    """The run's ComfyUI sampling: ``size`` is (height, width) in pixels, ``count`` the pictures it draws,
    ``shift`` a flow model's sigma shift when the workflow sets one (ModelSamplingFlux, ModelSamplingSD3)."""
    pipe = model.pipe
    distilled = bool(getattr(getattr(pipe, "transformer", None), "config", {}).get("guidance_embeds", True))
    space = space_for(model.family, pipe.scheduler.config, guidance_distilled=distilled, shift=shift)
    plan = SamplingPlan(sampler, schedule, steps, seed, denoise=denoise if task != "text" else 1.0,
                        family=model.family)
    packing = None
    if model.family == "flux":
        shape = _latent_shape(pipe, "flux", {"height": size[0], "width": size[1], "num_images_per_prompt": count})
        packing = Packing(shape, partial(type(pipe)._pack_latents, batch_size=shape[0], num_channels_latents=shape[1],
                                         height=shape[2], width=shape[3]))
    return ComfySampling(KSamplerScheduler(pipe.scheduler.config, space, plan, packing), task, model.family)


def _latent_shape(pipe: Any, family: str, call: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """The spatial latent shape ComfyUI draws the start noise in: (pictures, channels, height / 8, width / 8);
    Flux's latent is 16 channels at height / 8 rounded to its 2x2 packing."""
    batch = int(call.get("num_images_per_prompt", 1) or 1)
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    height, width = int(call["height"]), int(call["width"])
    if family == "flux":
        channels = int(pipe.transformer.config.in_channels) // 4
        return batch, channels, 2 * (height // (factor * 2)), 2 * (width // (factor * 2))
    denoiser = pipe.transformer if family == "sd3" else pipe.unet
    return batch, int(denoiser.config.in_channels), height // factor, width // factor


def encode_picture(pipe: Any, family: str, pixels: Any) -> Any:
    """Pixels in 0..1 -> the model's latent the way ComfyUI's VAEEncode makes it: the mean of the VAE's
    distribution, scaled (and shifted for SD3 and Flux) into the denoiser's range."""
    import torch

    vae = pipe.vae
    with torch.no_grad():
        moments = vae.encode((pixels * 2.0 - 1.0).to(device=vae.device, dtype=vae.dtype)).latent_dist.mode()
    shift = getattr(vae.config, "shift_factor", None) if family in ("sd3", "flux") else None
    latents = (moments - shift) if shift is not None else moments
    return latents * float(vae.config.scaling_factor)


def latent_mask(mask: Any, latents: Any) -> Any:
    """A pixel mask (pictures, 1, height, width) at the latents' size and channels, as ComfyUI's sampler prepares
    a noise mask: bilinear, one per picture."""
    from torch.nn import functional as F  # noqa: N812

    small = F.interpolate(mask.float().reshape(-1, 1, *mask.shape[-2:]), size=tuple(latents.shape[-2:]),
                          mode="bilinear")
    small = small.repeat(1, int(latents.shape[1]), 1, 1)
    if small.shape[0] != latents.shape[0]:
        small = small.repeat(int(latents.shape[0]) // int(small.shape[0]) or 1, 1, 1, 1)
    return small.to(latents.device)
