"""Control pictures for ControlNet: ``image.canny`` (edges, OpenCV) and ``image.depth`` (a depth-estimation model).

Both return a 3-channel picture of the input's size, in the form the matching ControlNet models were trained on:
white edges on black for canny, and a depth map that is bright where the scene is near for depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ModelSource, ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image
from nodeforge.nodes.family_helpers import on_device, quiet_transformers, torch_device

DEPTH_FAMILIES = ("depth",)
DEPTH_ESTIMATOR = ModelKind("depth", DEPTH_FAMILIES)
"""A transformers depth-estimation model (``load_depth``)."""
MAX_GRADIENT = 2040  # |dx| + |dy| of a 3x3 Sobel on 8-bit pixels: 4 * 255 each way


class Canny(Node):
    """Edges with the Canny detector, as white lines on black (what canny ControlNets take). A pixel whose
    gradient is above ``high`` starts an edge, which continues through pixels above ``low``: lower both for more
    detail, raise them for only the strong outlines. Colour pictures are read on all three channels (OpenCV takes
    the strongest gradient of them); alpha is ignored."""

    type_id = "image.canny"
    title = "Canny edges"
    version = "1.0.0"

    class Inputs(NodeInputs):
        image: Image = Field(description="The picture to find edges in")
        low: int = Field(100, ge=0, le=MAX_GRADIENT, description="Gradient an edge may continue through")
        high: int = Field(200, ge=0, le=MAX_GRADIENT, description="Gradient that starts an edge (at least low)")

    class Outputs(NodeOutputs):
        image: Image = Field(description="White edges on black, 3 channels, the input's size")

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        defaults = self.Inputs.model_fields
        low = literals.get("low", None if "low" in bound else defaults["low"].default)
        high = literals.get("high", None if "high" in bound else defaults["high"].default)
        if isinstance(low, int) and isinstance(high, int) and high < low:
            return [("high", f"high ({high}) is below low ({low}); an edge starts above high and continues "
                             "above low, so high must be at least low")]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import cv2
        import numpy as np
        import torch

        pixels = inputs.image.tensor
        arrays = (pixels.detach().float().clamp(0, 1) * 255).round().byte().cpu().permute(0, 2, 3, 1).numpy()
        edges = [cv2.Canny(np.ascontiguousarray(a[:, :, :3] if a.shape[2] >= 3 else a[:, :, 0]), inputs.low,
                           inputs.high) for a in arrays]
        plane = torch.from_numpy(np.stack(edges)).to(pixels.device).float().div(255.0).unsqueeze(1)
        return self.Outputs(image=Image(plane.repeat(1, 3, 1, 1).contiguous()))


@dataclass
class DepthEstimator:
    """A loaded depth-estimation model and its image processor, as the model manager holds them. ``metric``
    models give distances (far is large); relative ones (Depth Anything, MiDaS) give inverse depth (near is large)."""

    model: Any
    processor: Any
    metric: bool

    @property
    def components(self) -> dict[str, Any]:
        return {"model": self.model}

    def to(self, device: str) -> DepthEstimator:
        self.model.to(torch_device(device))
        return self


def load_depth(resolved: ResolvedModel, device: str) -> DepthEstimator:
    """The model and processor of a transformers depth-estimation folder; the processor's PIL backend, so the
    resizing is the same with or without torchvision."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    quiet_transformers()
    try:
        model = AutoModelForDepthEstimation.from_pretrained(str(resolved.path))
        processor = AutoImageProcessor.from_pretrained(str(resolved.path), backend="pil")
    except Exception as exc:  # noqa: BLE001 - wrong kind of folder, missing files: one message naming the model
        raise NodeError(f"model '{resolved.name}' ({resolved.path}) could not be loaded as a depth-estimation "
                        f"model: {type(exc).__name__}: {first_line(exc, 300)}; accepted: transformers depth "
                        "models (depth-anything-small, dpt-hybrid-midas, tiny/depth, or such a folder)",
                        input="model") from None
    config = model.config
    metric = getattr(config, "depth_estimation_type", "relative") == "metric" or config.model_type == "zoedepth"
    return DepthEstimator(on_device(model, device), processor, metric)


class Depth(Node):
    """A depth map of the picture with a depth-estimation model (Depth Anything V2 small by default), for depth
    ControlNets: 3 channels, the input's size, each picture scaled to 0..1 with the nearest point white and the
    farthest black (as the ControlNet depth annotators draw it; distances from metric models are turned round)."""

    type_id = "image.depth"
    title = "Depth map"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        image: Image = Field(description="The picture to estimate depth for")
        model: str = ModelInput("depth-anything-small", kind=DEPTH_ESTIMATOR,
                                description="depth-anything-small, dpt-hybrid-midas, tiny/depth (noise), a Hub id or a"
                                            " local folder of a transformers depth model")

    class Outputs(NodeOutputs):
        image: Image = Field(description="Depth, near = bright, 3 channels, the input's size")

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        estimator = ctx.models.load(inputs.model, load_depth)
        pictures = [picture.convert("RGB") for picture in inputs.image.to_pil()]
        size = (inputs.image.height, inputs.image.width)
        maps = []
        for index, picture in enumerate(pictures):
            ctx.progress(index, len(pictures))
            batch = estimator.processor(images=[picture], return_tensors="pt").to(estimator.model.device)
            with torch.inference_mode():
                predicted = estimator.model(**batch).predicted_depth
            maps.append(near_is_bright(predicted, size, estimator.metric))
        ctx.progress(len(pictures), len(pictures))
        plane = torch.cat(maps).to(torch_device(ctx.device))
        return self.Outputs(image=Image(plane.repeat(1, 3, 1, 1).contiguous()))


def near_is_bright(predicted: Any, size: tuple[int, int], metric: bool) -> Any:
    """A model's depth output (``[B, h, w]`` or ``[B, 1, h, w]``) resized to ``size`` (bicubic) and scaled per
    picture to 0..1, nearest = 1; a flat map (no depth differences) is all 0."""
    from torch.nn import functional as F  # noqa: N812

    depth = predicted.detach().float().reshape(predicted.shape[0], 1, *predicted.shape[-2:])
    depth = F.interpolate(depth, size=size, mode="bicubic", align_corners=False)
    if metric:
        depth = -depth
    flat = depth.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    span = (flat.max(dim=1).values.view(-1, 1, 1, 1) - low)
    scaled = (depth - low) / span.clamp(min=1e-12)
    return scaled.where(span > 0, scaled.new_zeros(())).clamp(0, 1)
