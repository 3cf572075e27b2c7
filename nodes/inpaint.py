"""Inpainting: repaint where a mask is 1, keep every other pixel exactly as it was.

Inpainting checkpoints (SD 1.x/2.x and SDXL with a 9-channel UNet, Flux Fill) and ordinary checkpoints both run,
through diffusers' inpaint pipelines built from the loaded model (``from_pipe``: the same weights as
``image.generate``). The VAE round trip changes pixels a little everywhere, so the result is blended back through
the mask after decoding: where the mask is 0 the output is the input, bit for bit. Outpainting is the same node fed
by ``image.pad``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.model_source import ModelSource
from nodeforge.engine.node import NodeOutputs
from nodeforge.engine.values import Image, Mask
from nodeforge.nodes.image import (
    DiffusionInputs,
    DiffusionNode,
    check_diffusion,
    diffusion_model,
    fit_pixels,
    sample,
    size_multiple,
)


class InpaintOutput(NodeOutputs):
    image: Image


class Inpaint(DiffusionNode):
    """Repaint the masked part of an image guided by a prompt (mask 1 = repaint, 0 = keep). ``strength`` 1 draws
    the masked area anew; lower keeps some of what was there. Takes LoRAs, schedulers and controls like
    ``image.generate``."""

    type_id = "image.inpaint"
    version = "1.2.0"

    class Inputs(DiffusionInputs):
        image: Image = Field(description="The picture to repaint (its size is kept)")
        mask: Mask = Field(description="Where to repaint: 1 repaints, 0 keeps (mask.from_image, image.pad)")
        strength: float = Field(1.0, gt=0.0, le=1.0, description="1: draw the masked area anew; lower keeps some "
                                                                 "of it")

    Outputs = InpaintOutput

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        issues = check_diffusion(literals, models)
        image, mask = literals.get("image"), literals.get("mask")
        if isinstance(image, Image) and isinstance(mask, Mask):
            problem = mask_problem(image, mask)
            if problem:
                issues.append(("mask", problem))
        return issues

    def run(self, inputs: Inputs, ctx: NodeContext) -> InpaintOutput:
        model = diffusion_model(ctx, inputs.model)
        pixels = fit_pixels(inputs.image, size_multiple(model), model, ctx)
        height, width = int(pixels.shape[2]), int(pixels.shape[3])
        mask = _fit_mask(inputs.mask, (height, width)).to(pixels.device)
        painted = sample(model, inputs, ctx, task="inpaint", size=(height, width),
                         prompt=[inputs.prompt] * int(pixels.shape[0]), image=pixels, mask_image=mask,
                         strength=inputs.strength, height=height, width=width)
        return InpaintOutput(image=Image(blend(inputs.image.tensor, painted.tensor, inputs.mask.tensor)))


def mask_problem(image: Image, mask: Mask) -> str | None:
    """Why a mask cannot go with an image: its size, or a batch that is neither 1 nor the image's."""
    if (mask.height, mask.width) != (image.height, image.width):
        return (f"the mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}; make the "
                "mask from the same picture (mask.from_image) or pad both together (image.pad)")
    if mask.batch not in (1, image.batch):
        return f"the mask batch is {mask.batch} but the image batch is {image.batch}; give one mask or one per image"
    return None


def blend(original: Any, painted: Any, mask: Any) -> Any:
    """``painted`` where the mask is 1, ``original`` where it is 0 (and a mix between), at the original's size:
    the pipeline's output is resized back when the model needed other multiples."""
    from torch.nn import functional as F  # noqa: N812

    original = original.float()
    painted = painted.to(device=original.device, dtype=original.dtype)
    if original.shape[1] != painted.shape[1]:
        painted = painted[:, :3] if original.shape[1] == 3 else _with_channels(painted, original)
    if tuple(painted.shape[2:]) != tuple(original.shape[2:]):
        painted = F.interpolate(painted, size=tuple(original.shape[2:]), mode="bicubic", antialias=True).clamp(0, 1)
    weight = mask.to(device=original.device, dtype=original.dtype)
    return (original * (1 - weight) + painted * weight).clamp(0, 1)


def _with_channels(painted: Any, original: Any) -> Any:
    """The painted RGB with the original's alpha (RGBA) or as gray (one channel)."""
    if original.shape[1] == 4:
        import torch

        return torch.cat([painted[:, :3], original[:, 3:]], dim=1)
    return painted[:, :3].mean(dim=1, keepdim=True)


def _fit_mask(mask: Mask, size: tuple[int, int]) -> Any:
    from torch.nn import functional as F  # noqa: N812

    tensor = mask.tensor.float()
    if tuple(tensor.shape[2:]) != size:
        tensor = F.interpolate(tensor, size=size, mode="bilinear").clamp(0, 1)
    return tensor

