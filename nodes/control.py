"""Controls for the diffusion nodes: a ControlNet with its picture (``image.controlnet``) and an IP-Adapter with its
reference pictures (``image.ip_adapter``), each a small ``control`` value that ``image.generate``,
``image.transform`` and ``image.inpaint`` take in their ``controls`` list.

These nodes load nothing: they find the model's files (so a missing encoder or a wrong file is an error here, on
this node) and say which base family it is for; the diffusion node loads it on its own device, next to its model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput
from nodeforge.engine.errors import NodeError
from nodeforge.engine.model_source import ModelSource
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Control, Image
from nodeforge.nodes.models.diffusion.controls import (
    CONTROLNET,
    CONTROLNET_BASE,
    IP_ADAPTER,
    UNION_MODES,
    family_of_controlnet,
)
from nodeforge.nodes.models.diffusion.ip_adapter import IMAGE_ENCODER, adapter_file, encoder_folder

CONTROLNET_HELP = ("tiny/controlnet (for tiny/sd), tiny/controlnet-sdxl, tiny/controlnet-union; an alias such as "
                   "controlnet-canny-sd15, controlnet-depth-sdxl or controlnet-union-sdxl; a Hub id; or a local "
                   "diffusers folder or .safetensors file")
IP_ADAPTER_HELP = ("tiny/ip_adapter (for tiny/sd); an alias such as ip-adapter-sd15 or ip-adapter-plus-sdxl; or a "
                   "local ip-adapter .safetensors/.bin file (its image_encoder folder beside it)")


class ControlOutput(NodeOutputs):
    control: Control


class ControlNetNode(Node):
    """A ControlNet and its control picture (edges, depth, pose...): steers the composition of a diffusion node.
    ``weight`` scales its effect; ``start``/``end`` are the fractions of the denoising steps it acts in."""

    type_id = "image.controlnet"
    title = "ControlNet"
    version = "1.0.0"

    class Inputs(NodeInputs):
        image: Image = Field(description="The control picture (from image.canny, image.depth, a pose image...)")
        model: str = ModelInput("controlnet-canny-sd15", kind=CONTROLNET, description=CONTROLNET_HELP)
        weight: float = Field(1.0, ge=0.0, le=4.0, description="How strongly it steers; 0 turns it off")
        start: float = Field(0.0, ge=0.0, le=1.0, description="Fraction of the steps where it starts acting")
        end: float = Field(1.0, ge=0.0, le=1.0, description="Fraction of the steps where it stops acting")
        mode: str = Field("", description="ControlNet-Union only: the control type of the picture: "
                                          + ", ".join(UNION_MODES),
                          json_schema_extra={"enum": ["", *UNION_MODES]})

    Outputs = ControlOutput

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        issues = _range_issues(literals)
        model = literals.get("model")
        if isinstance(model, str):
            mode = literals.get("mode")
            if models.family_of(model) == "controlnet-union-sdxl" and not mode and "mode" not in bound:
                issues.append(("mode", "a ControlNet-Union model needs the control type of its picture: one of "
                                       + ", ".join(UNION_MODES)))
        return issues

    def run(self, inputs: Inputs, ctx: NodeContext) -> ControlOutput:
        resolved = ctx.models.resolve(inputs.model)
        family = resolved.family or family_of_controlnet(resolved.path)
        if family is not None and family not in CONTROLNET_BASE:
            raise NodeError(f"model '{inputs.model}' is a {family} model, not a ControlNet", input="model")
        return ControlOutput(control=Control("controlnet", inputs.model, inputs.image, inputs.weight, inputs.start,
                                             inputs.end, family, inputs.mode or None))


class IPAdapterNode(Node):
    """An IP-Adapter (or IP-Adapter Plus) with reference pictures: prompts a diffusion node with images. Every
    picture of the batch is a reference; ``weight`` scales their pull. Removed after the node that uses it."""

    type_id = "image.ip_adapter"
    title = "IP-Adapter"
    version = "1.0.0"

    class Inputs(NodeInputs):
        image: Image = Field(description="Reference picture(s): each image of the batch counts")
        model: str = ModelInput("ip-adapter-sd15", kind=IP_ADAPTER, description=IP_ADAPTER_HELP)
        weight: float = Field(0.6, ge=0.0, le=2.0, description="How strongly the pictures steer")
        image_encoder: str = ModelInput("", kind=IMAGE_ENCODER, description="The CLIP image encoder folder; empty: the"
                                                                            " image_encoder folder found next to the "
                                                                            "adapter weights")

    Outputs = ControlOutput

    def run(self, inputs: Inputs, ctx: NodeContext) -> ControlOutput:
        resolved = ctx.models.resolve(inputs.model)
        try:
            weights = adapter_file(resolved.path)
        except ValueError as exc:
            raise NodeError(f"IP-Adapter '{inputs.model}': {exc}", input="model") from None
        encoder = inputs.image_encoder.strip()
        if encoder:
            ctx.models.resolve(encoder, input="image_encoder")
        else:
            found = encoder_folder(weights)
            if found is None:
                raise NodeError(f"IP-Adapter '{inputs.model}' has no image encoder: no image_encoder folder with a "
                                f"config.json next to {weights.name} (or in models/ beside it); give its folder in "
                                "image_encoder", input="image_encoder")
            encoder = str(found)
        return ControlOutput(control=Control("ip_adapter", inputs.model, inputs.image, inputs.weight,
                                             family=resolved.family, encoder=encoder))


def _range_issues(literals: Mapping[str, Any]) -> list[tuple[str | None, str]]:
    start, end = literals.get("start"), literals.get("end")
    if isinstance(start, int | float) and isinstance(end, int | float) and start >= end:
        return [("end", f"end {end} must be after start {start} (fractions of the denoising steps, 0..1)")]
    return []
