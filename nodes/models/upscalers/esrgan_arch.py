"""Real-ESRGAN architectures written for nodeforge, with the upstream parameter names, so upstream checkpoints
(``RealESRGAN_x4plus.pth``, ``realesr-animevideov3.pth``...) load as they are.

- ``RRDBNet``: ``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1/2``, ``conv_hr``,
  ``conv_last``; scale 4 (x2 and x1 models fold the input with pixel-unshuffle first).
- ``SRVGGNetCompact``: ``body`` alternating conv and activation, then pixel-shuffle, plus the nearest-upsampled input.

torch is imported only when ``architectures()`` is first called: registering nodes or building the catalogue never does.
``detect(state_dict)`` reads the hyper-parameters back from a state dict's keys and shapes.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

_BODY = re.compile(r"^body\.(\d+)\.")


@functools.cache
def architectures() -> SimpleNamespace:
    """The module classes (built on first use so torch loads lazily): RRDBNet, SRVGGNetCompact."""
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    class ResidualDenseBlock(nn.Module):
        """Five densely connected 3x3 convolutions, scaled residual (x0.2)."""

        def __init__(self, num_feat: int, num_grow_ch: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
            self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
            self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
            self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
            self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x1 = self.lrelu(self.conv1(x))
            x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
            x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
            x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
            x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
            return x5 * 0.2 + x

    class RRDB(nn.Module):
        """Three residual dense blocks, scaled residual (x0.2)."""

        def __init__(self, num_feat: int, num_grow_ch: int) -> None:
            super().__init__()
            self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
            self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
            self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x

    class RRDBNet(nn.Module):
        """ESRGAN's generator (Real-ESRGAN x4plus: num_feat 64, num_block 23; anime: num_block 6)."""

        def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                     num_block: int = 23, num_grow_ch: int = 32) -> None:
            super().__init__()
            self.scale = scale
            folded = num_in_ch * {4: 1, 2: 4, 1: 16}[scale]
            self.conv_first = nn.Conv2d(folded, num_feat, 3, 1, 1)
            self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
            self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feat = F.pixel_unshuffle(x, 4 // self.scale) if self.scale != 4 else x
            feat = self.conv_first(feat)
            feat = feat + self.conv_body(self.body(feat))
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
            return self.conv_last(self.lrelu(self.conv_hr(feat)))

    class SRVGGNetCompact(nn.Module):
        """A plain VGG-style body with pixel-shuffle upsampling (realesr-animevideov3, realesr-general-x4v3)."""

        def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                     upscale: int = 4, act_type: str = "prelu") -> None:
            super().__init__()
            self.scale = upscale

            def activation() -> nn.Module:
                if act_type == "prelu":
                    return nn.PReLU(num_parameters=num_feat)
                if act_type == "relu":
                    return nn.ReLU(inplace=True)
                return nn.LeakyReLU(negative_slope=0.1, inplace=True)

            layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), activation()]
            for _ in range(num_conv):
                layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), activation()]
            layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
            self.body = nn.ModuleList(layers)
            self.upsampler = nn.PixelShuffle(upscale)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = x
            for layer in self.body:
                out = layer(out)
            return self.upsampler(out) + F.interpolate(x, scale_factor=self.scale, mode="nearest")

    return SimpleNamespace(RRDBNet=RRDBNet, SRVGGNetCompact=SRVGGNetCompact)


@dataclass(frozen=True)
class ArchSpec:
    """An architecture and the hyper-parameters that rebuild it, as read from a state dict."""

    arch: str
    params: Mapping[str, Any]

    @property
    def scale(self) -> int:
        return int(self.params.get("scale", self.params.get("upscale", 1)))

    def build(self) -> Any:
        return getattr(architectures(), self.arch)(**self.params)


def detect(state: Mapping[str, Any]) -> ArchSpec | None:
    """RRDBNet or SRVGGNetCompact hyper-parameters from upstream key names and tensor shapes; None otherwise."""
    if "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state and "conv_last.weight" in state:
        first, last = state["conv_first.weight"], state["conv_last.weight"]
        out_ch, folded = int(last.shape[0]), int(first.shape[1])
        scale = {1: 4, 4: 2, 16: 1}.get(folded // out_ch if folded % out_ch == 0 else 0)
        if scale is None:
            return None
        blocks = 1 + max(int(m.group(1)) for k in state if (m := _BODY.match(k)))
        return ArchSpec("RRDBNet", {"num_in_ch": out_ch, "num_out_ch": out_ch, "scale": scale,
                                    "num_feat": int(first.shape[0]), "num_block": blocks,
                                    "num_grow_ch": int(state["body.0.rdb1.conv1.weight"].shape[0])})
    if "body.0.weight" in state and "conv_first.weight" not in state:
        indices = sorted({int(m.group(1)) for k in state if (m := _BODY.match(k))})
        convs = [i for i in indices if getattr(state.get(f"body.{i}.weight"), "ndim", 0) == 4]
        if len(convs) < 2 or convs[0] != 0:
            return None
        first, last = state["body.0.weight"], state[f"body.{convs[-1]}.weight"]
        in_ch, feat = int(first.shape[1]), int(first.shape[0])
        upscale = math.isqrt(int(last.shape[0]) // in_ch)
        if upscale * upscale * in_ch != int(last.shape[0]):
            return None
        act = "prelu" if "body.1.weight" in state else "relu"
        return ArchSpec("SRVGGNetCompact", {"num_in_ch": in_ch, "num_out_ch": in_ch, "num_feat": feat,
                                            "num_conv": len(convs) - 2, "upscale": upscale, "act_type": act})
    return None
