"""Masks for inpainting and outpainting: ``mask.from_image``, ``mask.grow``, ``mask.blur``, ``mask.invert`` and
``image.pad`` (CPU-light, no models).

A mask is a ``Mask`` value: ``[B, 1, H, W]`` floats in 0..1, 1 = repaint. These nodes keep the batch of what they
are given (``image.pad`` gives one mask per image), so an inpainting node can pair masks with images one to one;
where a consumer combines a mask of batch 1 with a larger image batch, the one mask applies to every image.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.errors import NodeError
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image, Mask

# ITU-R BT.601 luma weights: the ones PIL's convert("L") uses, so a mask read from a colour picture equals the
# one read from the same picture saved as greyscale.
LUMA = (0.299, 0.587, 0.114)
PAD_FILL = 0.5
MAX_GROW = 1024
MAX_PAD = 8192


class FromImage(Node):
    """Read a mask out of a picture. ``alpha`` (the default) follows ComfyUI's LoadImage and the editor's mask
    painter: the transparent (painted) area is the area to repaint, so mask = 1 - alpha. The other channels read
    a black-and-white mask picture: white = repaint."""

    type_id = "mask.from_image"
    title = "Mask from image"
    version = "1.0.0"

    class Inputs(NodeInputs):
        image: Image = Field(description="The picture to read the mask from")
        channel: Literal["alpha", "luminance", "red", "green", "blue"] = Field(
            "alpha", description="alpha: transparent = repaint (1 - alpha); luminance (BT.601), red, green, blue: "
                                 "white = repaint")

    class Outputs(NodeOutputs):
        mask: Mask

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        pixels = inputs.image.tensor.float()
        channels = int(pixels.shape[1])
        if inputs.channel == "alpha":
            if channels != 4:
                kind = "a one-channel (grey)" if channels == 1 else "an RGB"
                raise NodeError(f"the image has no alpha channel ({kind} image), so there is no transparent area "
                                "to read as the mask; use channel 'luminance' for a black-and-white mask picture "
                                "(white = repaint), or paint the mask on image.load in the editor", input="image")
            plane = 1.0 - pixels[:, 3:4]
        elif channels == 1:
            plane = pixels
        elif inputs.channel == "luminance":
            red, green, blue = LUMA
            plane = red * pixels[:, 0:1] + green * pixels[:, 1:2] + blue * pixels[:, 2:3]
        else:
            index = ("red", "green", "blue").index(inputs.channel)
            plane = pixels[:, index:index + 1]
        return self.Outputs(mask=Mask(plane.clamp(0, 1).contiguous()))


class Grow(Node):
    """Grow the mask by ``pixels`` (negative: shrink it), so the repainted area covers a seam or an outline the
    mask missed. A square kernel (grey dilation / erosion by max-pooling): an edge moves by exactly ``pixels``,
    soft masks stay soft, and it is two 1-D passes at any size; follow with ``mask.blur`` to round the corners.
    Outside the picture counts as nothing: the picture's border is not an edge of the mask."""

    type_id = "mask.grow"
    version = "1.0.0"

    class Inputs(NodeInputs):
        mask: Mask
        pixels: int = Field(8, ge=-MAX_GROW, le=MAX_GROW, description="Pixels to grow by; negative shrinks")

    class Outputs(NodeOutputs):
        mask: Mask

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        plane = inputs.mask.tensor.float()
        if inputs.pixels == 0:
            return self.Outputs(mask=inputs.mask)
        sign = 1.0 if inputs.pixels > 0 else -1.0
        grown = sign * _max_filter(sign * plane, abs(inputs.pixels))
        return self.Outputs(mask=Mask(grown.clamp(0, 1).contiguous()))


def _max_filter(plane: Any, radius: int) -> Any:
    """The maximum over a (2 radius + 1)-pixel square around each pixel, as a row pass then a column pass.
    Max-pooling pads with -inf, so pixels outside the picture never win; a radius past the picture's size sees
    the whole row or column already, so it is cut to that (same result, less work)."""
    from torch.nn import functional as F  # noqa: N812

    across, down = min(radius, int(plane.shape[3]) - 1), min(radius, int(plane.shape[2]) - 1)
    if across > 0:
        plane = F.max_pool2d(plane, kernel_size=(1, 2 * across + 1), stride=1, padding=(0, across))
    if down > 0:
        plane = F.max_pool2d(plane, kernel_size=(2 * down + 1, 1), stride=1, padding=(down, 0))
    return plane


class Blur(Node):
    """Feather the mask with a Gaussian blur, so the repainted area fades into the rest instead of ending in a
    hard seam. ``radius`` is the Gaussian's standard deviation in pixels (as PIL's GaussianBlur and CSS blur()
    take it); the kernel reaches 3 radii. The picture's border is extended (replicated), so a mask that touches
    the border stays whole there."""

    type_id = "mask.blur"
    version = "1.0.0"

    class Inputs(NodeInputs):
        mask: Mask
        radius: float = Field(4.0, ge=0.0, le=256.0, description="Standard deviation of the blur, in pixels")

    class Outputs(NodeOutputs):
        mask: Mask

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        if inputs.radius <= 0:
            return self.Outputs(mask=inputs.mask)
        return self.Outputs(mask=Mask(gaussian_blur(inputs.mask.tensor.float(), inputs.radius).clamp(0, 1)))


def gaussian_blur(plane: Any, sigma: float) -> Any:
    """Separable Gaussian blur of ``[B, 1, H, W]`` with standard deviation ``sigma``, edges replicated."""
    import torch
    from torch.nn import functional as F  # noqa: N812

    reach = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64)
    weights = torch.exp(-(offsets ** 2) / (2 * sigma * sigma))
    kernel = (weights / weights.sum()).to(dtype=plane.dtype, device=plane.device)
    rows = F.conv2d(F.pad(plane, (reach, reach, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(rows, (0, 0, reach, reach), mode="replicate"), kernel.view(1, 1, -1, 1)).contiguous()


class Invert(Node):
    """Swap what is repainted and what is kept (1 - mask)."""

    type_id = "mask.invert"
    version = "1.0.0"

    class Inputs(NodeInputs):
        mask: Mask

    class Outputs(NodeOutputs):
        mask: Mask

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(mask=Mask((1.0 - inputs.mask.tensor.float()).contiguous()))


class Pad(Node):
    """Outpainting: add room around the picture and the mask that says to paint it. The new area is neutral grey
    (0.5), as ComfyUI's ImagePadForOutpaint fills it: that is what inpainting models see under a mask (masked
    pixels are 0 in their -1..1 range) and it leaves no streaks at strength below 1, as repeating the edge does.
    A picture with alpha gets alpha 0 in the new area, so ``mask.from_image`` reads the same mask from it.

    The mask is 1 over the new area and 0 over the picture. With ``feather`` > 0 it reaches into the picture from
    each padded side, falling from 1 at the picture's edge as ((feather - d) / feather)² at d pixels in, to 0 at
    ``feather`` pixels (ComfyUI's ramp, counted the same way from every side), so the new content blends into the
    old; sides not padded get no ramp, and a feather wider than the picture ramps across all of it."""

    type_id = "image.pad"
    title = "Pad for outpainting"
    version = "1.0.0"

    class Inputs(NodeInputs):
        image: Image
        left: int = Field(0, ge=0, le=MAX_PAD, description="Pixels to add on the left")
        top: int = Field(0, ge=0, le=MAX_PAD, description="Pixels to add at the top")
        right: int = Field(0, ge=0, le=MAX_PAD, description="Pixels to add on the right")
        bottom: int = Field(0, ge=0, le=MAX_PAD, description="Pixels to add at the bottom")
        feather: int = Field(0, ge=0, le=MAX_PAD, description="Pixels the mask fades over into the picture")

    class Outputs(NodeOutputs):
        image: Image = Field(description="The picture with the new area (grey) around it")
        mask: Mask = Field(description="1 over the new area (and the feather ramp), 0 over the picture")

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        pixels = inputs.image.tensor.float()
        batch, channels, height, width = (int(n) for n in pixels.shape)
        left, top, right, bottom = inputs.left, inputs.top, inputs.right, inputs.bottom
        size = (height + top + bottom, width + left + right)
        padded = torch.full((batch, channels, *size), PAD_FILL, dtype=pixels.dtype, device=pixels.device)
        if channels == 4:
            padded[:, 3] = 0.0
        padded[:, :, top:top + height, left:left + width] = pixels
        mask = torch.ones((batch, 1, *size), dtype=pixels.dtype, device=pixels.device)
        mask[:, :, top:top + height, left:left + width] = _feather(height, width, (left, top, right, bottom),
                                                                   inputs.feather, pixels)
        return self.Outputs(image=Image(padded), mask=Mask(mask))


def _feather(height: int, width: int, sides: tuple[int, int, int, int], feather: int, like: Any) -> Any:
    """The mask over the original picture: 0, or ComfyUI's squared ramp from each padded side."""
    import torch

    inside = torch.zeros((height, width), dtype=like.dtype, device=like.device)
    if feather <= 0:
        return inside
    far = float(max(height, width, feather))
    rows = torch.arange(height, dtype=like.dtype, device=like.device).view(-1, 1)
    columns = torch.arange(width, dtype=like.dtype, device=like.device).view(1, -1)
    left, top, right, bottom = sides
    distance = torch.full((height, width), far, dtype=like.dtype, device=like.device)
    for padded, along in ((left, columns), (top, rows), (right, width - 1 - columns), (bottom, height - 1 - rows)):
        if padded:
            distance = torch.minimum(distance, along.expand(height, width))
    ramp = ((feather - distance) / feather).clamp(min=0.0)
    return ramp * ramp


class ToImage(Node):
    """A mask as a grey picture (1 white, 0 black), as ComfyUI's MaskToImage: to look at, save or composite."""

    type_id = "mask.to_image"
    version = "1.0.0"

    class Inputs(NodeInputs):
        mask: Mask

    class Outputs(NodeOutputs):
        image: Image

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(image=Image(inputs.mask.tensor.float().expand(-1, 3, -1, -1).contiguous()))
