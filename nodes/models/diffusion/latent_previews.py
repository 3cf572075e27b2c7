"""Step previews of diffusion latents: a fast linear latent -> RGB projection per family, or a TAESD decode.

The projection multiplies each latent cell's channels by a 3-column matrix (plus a bias), the published factors
ComfyUI fitted per latent space (``comfy/latent_formats.py``): SD 1.x/2.x and AnimateDiff (4 channels), SDXL (4),
SD3 (16), Flux (16) and Wan 2.1 (16). They apply to the latents as the diffusers pipelines hold them between steps
(scaled, shifted or normalised as each family's VAE expects), which is also the space ComfyUI fitted them in. A
latent of any other family or channel count (the tiny test models, LTX, CogVideoX, Wan 2.2's 48 channels) gets a
generic projection: its channels averaged in three groups, each stretched to 0..1. Either way the picture has the
latent's size (one pixel per latent cell, 1/8 of the image for most VAEs): it costs well under a millisecond.

Latents come in the layout of the pipeline's step callback: ``[B, C, H, W]`` for images; Flux packs 2x2 patches
into ``[B, (H/2)*(W/2), C*4]``, unpacked with the pixel size; video is ``[B, C, F, H, W]`` (CogVideoX: ``[B, F, C,
H, W]``; LTX packs ``[B, F*H*W, C]``) and the preview shows the middle latent frame. Only the first picture of a
batch is shown.

TAESD (diffusers ``AutoencoderTiny``) decodes a latent to a real picture at the image's size for a few
milliseconds on a GPU; ``taesd_name`` says which one a model family takes (``TAESD``; aliases in
``aliases-previews.toml``, ``tiny/taesd`` for tiny models).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from nodeforge.engine.values import Image


@dataclass(frozen=True)
class LatentFactors:
    """RGB = latent channels x ``factors`` (one row of R, G, B weights per channel) + ``bias``; then
    ``(x + 1) / 2``."""

    factors: Sequence[Sequence[float]]
    bias: Sequence[float] = (0.0, 0.0, 0.0)


SD15 = LatentFactors([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
                      [-0.2120, -0.2616, -0.7177]])
SDXL = LatentFactors([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362],
                      [-0.3165, -0.2492, -0.2188]], [0.1084, -0.0175, -0.0011])
SD3 = LatentFactors([
    [-0.0922, -0.0175, 0.0749], [0.0311, 0.0633, 0.0954], [0.1994, 0.0927, 0.0458], [0.0856, 0.0339, 0.0902],
    [0.0587, 0.0272, -0.0496], [-0.0006, 0.1104, 0.0309], [0.0978, 0.0306, 0.0427], [-0.0042, 0.1038, 0.1358],
    [-0.0194, 0.0020, 0.0669], [-0.0488, 0.0130, -0.0268], [0.0922, 0.0988, 0.0951], [-0.0278, 0.0524, -0.0542],
    [0.0332, 0.0456, 0.0895], [-0.0069, -0.0030, -0.0810], [-0.0596, -0.0465, -0.0293], [-0.1448, -0.1463, -0.1189],
], [0.2394, 0.2135, 0.1925])
FLUX = LatentFactors([
    [-0.0346, 0.0244, 0.0681], [0.0034, 0.0210, 0.0687], [0.0275, -0.0668, -0.0433], [-0.0174, 0.0160, 0.0617],
    [0.0859, 0.0721, 0.0329], [0.0004, 0.0383, 0.0115], [0.0405, 0.0861, 0.0915], [-0.0236, -0.0185, -0.0259],
    [-0.0245, 0.0250, 0.1180], [0.1008, 0.0755, -0.0421], [-0.0515, 0.0201, 0.0011], [0.0428, -0.0012, -0.0036],
    [0.0817, 0.0765, 0.0749], [-0.1264, -0.0522, -0.1103], [-0.0280, -0.0881, -0.0499], [-0.1262, -0.0982, -0.0778],
], [-0.0329, -0.0718, -0.0851])
WAN21 = LatentFactors([
    [-0.1299, -0.1692, 0.2932], [0.0671, 0.0406, 0.0442], [0.3568, 0.2548, 0.1747], [0.0372, 0.2344, 0.1420],
    [0.0313, 0.0189, -0.0328], [0.0296, -0.0956, -0.0665], [-0.3477, -0.4059, -0.2925], [0.0166, 0.1902, 0.1975],
    [-0.0412, 0.0267, -0.1364], [-0.1293, 0.0740, 0.1636], [0.0680, 0.3019, 0.1128], [0.0032, 0.0581, 0.0639],
    [-0.1251, 0.0927, 0.1699], [0.0060, -0.0633, 0.0005], [0.3477, 0.2275, 0.2950], [0.1984, 0.0913, 0.1861],
], [-0.1835, -0.0868, -0.3360])

FACTORS: Mapping[str, LatentFactors] = MappingProxyType({
    "sd": SD15, "animatediff": SD15, "sdxl": SDXL, "sd3": SD3, "flux": FLUX, "wan": WAN21})
"""Projection factors by model family; used only when the latent has as many channels as the factors have rows."""

TAESD: Mapping[str, str] = MappingProxyType({"sd": "taesd", "sdxl": "taesdxl", "sd3": "taesd3", "flux": "taef1"})
"""The TAESD each image family decodes with (aliases of madebyollin's models); video families have none here."""
TINY_TAESD = "tiny/taesd"


def taesd_name(model: str, family: str) -> str | None:
    """The TAESD for ``model`` of ``family``: ``tiny/taesd`` for a tiny model, the family's alias, else None."""
    if model.strip().startswith("tiny/"):
        return TINY_TAESD if family in TAESD else None
    return TAESD.get(family)


def spatial_latents(latents: Any, family: str, *, height: int | None = None, width: int | None = None,
                    scale: int = 8) -> Any:
    """The first picture's latent as ``[1, C, h, w]`` from the pipeline's layout (``height``/``width`` in pixels
    and the VAE's ``scale`` unpack packed latents; without them a square is assumed); None when the layout does
    not fit."""
    if latents.ndim == 4:
        return latents[:1]
    if latents.ndim == 5:
        frames = latents[:1].transpose(1, 2) if family == "cogvideox" else latents[:1]
        return frames[:, :, frames.shape[2] // 2]
    if latents.ndim != 3:
        return None
    cells, channels = int(latents.shape[1]), int(latents.shape[2])
    if family == "flux":
        rows, columns = _latent_size(cells * 4, height, width, scale)
        if rows * columns != cells * 4 or rows % 2 or columns % 2 or channels % 4:
            return None
        packed = latents[:1].reshape(1, rows // 2, columns // 2, channels // 4, 2, 2)
        return packed.permute(0, 3, 1, 4, 2, 5).reshape(1, channels // 4, rows, columns)
    rows, columns = _latent_size(None, height, width, scale)
    if rows * columns == 0 or cells % (rows * columns):
        return None
    frames = latents[:1].reshape(1, cells // (rows * columns), rows, columns, channels)
    return frames[:, frames.shape[1] // 2].permute(0, 3, 1, 2)


def _latent_size(cells: int | None, height: int | None, width: int | None, scale: int) -> tuple[int, int]:
    if height is not None and width is not None:
        return int(height) // scale, int(width) // scale
    side = math.isqrt(cells or 0)
    return side, side


def project(latent: Any, family: str) -> Image:
    """A ``[1, C, h, w]`` latent as a picture of its size: the family's factors, or the generic projection."""
    import torch

    values = latent.detach().float()
    channels = int(values.shape[1])
    known = FACTORS.get(family)
    if known is not None and len(known.factors) == channels:
        factors = torch.tensor(known.factors, device=values.device)
        bias = torch.tensor(known.bias, device=values.device).view(1, 3, 1, 1)
        rgb = torch.einsum("bchw,cr->brhw", values, factors) + bias
        return Image(((rgb + 1) / 2).clamp(0, 1))
    groups = [part.mean(dim=1, keepdim=True) for part in torch.tensor_split(values, min(3, channels), dim=1)]
    rgb = torch.cat([groups[i % len(groups)] for i in range(3)], dim=1)
    low = rgb.amin(dim=(2, 3), keepdim=True)
    high = rgb.amax(dim=(2, 3), keepdim=True)
    return Image(((rgb - low) / (high - low).clamp_min(1e-6)).clamp(0, 1))


def decode_taesd(taesd: Any, latent: Any) -> Image | None:
    """A ``[1, C, h, w]`` pipeline latent decoded by a TAESD (``AutoencoderTiny``) at the image's size, undoing
    its config's scaling and shift as the pipelines do; None when the channel counts differ."""
    import torch

    config = taesd.config
    if int(latent.shape[1]) != int(config.latent_channels):
        return None
    parameter = next(taesd.parameters())
    values = latent.detach().to(parameter.device, parameter.dtype)
    values = values / float(config.scaling_factor) + float(getattr(config, "shift_factor", 0.0) or 0.0)
    with torch.inference_mode():
        pixels = taesd.decode(values).sample
    return Image(((pixels.float() + 1) / 2).clamp(0, 1))
