"""The per-step callback every diffusion node hands its pipeline: progress, cancellation and step previews.

``step_callback`` returns the function diffusers calls as ``callback_on_step_end`` after each denoising step. It
reports ``ctx.progress(step, total)`` (which also stops a cancelled run there) and, when ``ctx.preview_due()``
says so, turns ``tensors["latents"]`` into a small picture for ``ctx.preview``: the family's latent projection, or
the family's TAESD when the run asked for ``taesd`` previews (``diffusion.latent_previews``). The TAESD is loaded
through ``ctx.models`` before the first step, like any model; when there is none for the family, it cannot be
loaded (offline without its weights) or it takes other latents than the model's, a warning says so and the
projection is used.

A step of a large picture can take minutes, so a cancelled run must not wait for the step to end: ``cancellable``
also checks the run before each block of the pipeline's networks (the denoiser's, the text encoders', the VAE's),
and a cancellation stops the work within one block.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.engine.values import Image
from nodeforge.nodes.family_helpers import reading_model, torch_device
from nodeforge.nodes.models.diffusion.latent_previews import decode_taesd, project, spatial_latents, taesd_name

StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]
"""diffusers' ``callback_on_step_end(pipe, step_index, timestep, tensors) -> tensors``."""

TAESD = ModelKind("taesd")
"""The tiny autoencoder step previews decode with."""


def step_callback(ctx: NodeContext, family: str, total: int, *, model: str = "", height: int | None = None,
                  width: int | None = None) -> StepCallback:
    """The ``callback_on_step_end`` for a pipeline of model ``family`` (``sd``, ``sdxl``, ``sd3``, ``flux``,
    ``wan``...) running ``total`` steps (the pipeline's own ``num_timesteps`` wins when it has one: image-to-image
    runs fewer). ``model`` is the node's model name (a tiny model previews with ``tiny/taesd``); ``height`` and
    ``width`` are the pixel size, which packed latents (Flux, LTX) need to be unpacked."""
    taesd = _taesd(ctx, model, family) if ctx.preview_method == "taesd" else None
    mismatch_told = [False]

    def picture(pipe: Any, latents: Any) -> Image | None:
        latent = spatial_latents(latents, family, height=height, width=width, scale=_vae_scale(pipe))
        if latent is None:
            return None
        if taesd is not None:
            decoded = decode_taesd(taesd, latent)
            if decoded is not None:
                return decoded
            if not mismatch_told[0]:
                mismatch_told[0] = True
                ctx.warn(f"previews use the latent projection: the TAESD takes {taesd.config.latent_channels}-"
                         f"channel latents, this model makes {latent.shape[1]}")
        return project(latent, family)

    def on_step(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        steps = getattr(pipe, "num_timesteps", None) or total
        ctx.progress(index + 1, steps)
        latents = tensors.get("latents")
        if latents is not None and ctx.preview_due():
            image = picture(pipe, latents)
            if image is not None:
                ctx.preview(index + 1, steps, image)
        return tensors

    return on_step


@contextmanager
def cancellable(ctx: NodeContext, pipe: Any) -> Iterator[None]:
    """For one call of ``pipe`` on this thread: stop it with RunCancelled at the next block of any of its networks
    once the run is cancelled. The checks are forward pre-hooks on each item of the networks' module lists
    (UNet down/up blocks and their layers, transformer blocks, encoder layers), removed afterwards; a hook acts on
    the calling thread only, so another run using the same resident model at the same time is not stopped."""
    import torch

    owner = threading.get_ident()

    def check(module: Any, args: Any) -> None:
        if threading.get_ident() == owner:
            ctx.check_cancelled()

    handles = []
    components = getattr(pipe, "components", None) or {}
    networks = [value for value in components.values() if isinstance(value, torch.nn.Module)]
    seen: set[int] = set()
    for network in networks:
        for module in network.modules():
            if isinstance(module, torch.nn.ModuleList):
                for block in module:
                    if id(block) not in seen:
                        seen.add(id(block))
                        handles.append(block.register_forward_pre_hook(check))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _taesd(ctx: NodeContext, model: str, family: str) -> Any:
    """The family's TAESD on the node's device, or None (with a warning) when there is none to use."""
    name = taesd_name(model, family)
    if name is None:
        ctx.warn(f"previews use the latent projection: there is no TAESD for {family} models")
        return None

    def build(resolved: ResolvedModel, device: str) -> Any:
        from diffusers import AutoencoderTiny

        with reading_model(name, resolved.path, "cannot be loaded as a TAESD (AutoencoderTiny)"):
            taesd = AutoencoderTiny.from_pretrained(str(resolved.path))
        return taesd.to(torch_device(device)).eval()

    try:
        return ctx.models.load(name, build, input="preview", kind=TAESD)
    except NodeError as exc:
        ctx.warn(f"previews use the latent projection: {exc}")
        return None


def _vae_scale(pipe: Any) -> int:
    """Pixels per latent cell of the pipeline's VAE (its spatial factor for video pipelines)."""
    for name in ("vae_scale_factor_spatial", "vae_spatial_compression_ratio", "vae_scale_factor"):
        value = getattr(pipe, name, None)
        if value:
            return int(value)
    return 8
