"""``image.caption``: image-to-text with transformers (BLIP-style captioning models), optionally prompted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, ModelKind
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image
from nodeforge.nodes.family_helpers import quiet_transformers

FAMILIES = ("blip",)
CAPTIONER = ModelKind("caption", FAMILIES)
"""A BLIP captioner (``load_captioner``)."""


@dataclass
class Captioner:
    """A loaded image-to-text model and its processor, as the model manager holds them."""

    model: Any
    processor: Any

    @property
    def components(self) -> dict[str, Any]:
        return {"model": self.model}

    def to(self, device: str) -> Captioner:
        self.model.to(device)
        return self


def load_captioner(resolved: ResolvedModel, device: str) -> Captioner:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    quiet_transformers()
    try:
        processor = AutoProcessor.from_pretrained(str(resolved.path))
        model = AutoModelForImageTextToText.from_pretrained(str(resolved.path))
    except Exception as exc:  # noqa: BLE001 - wrong kind of folder, missing files: one message naming the model
        raise NodeError(f"model '{resolved.name}' ({resolved.path}) could not be loaded as an image-to-text model: "
                        f"{type(exc).__name__}: {first_line(exc, 300)}; accepted: "
                        "BLIP-style captioning models (blip-base, blip-large, tiny/blip, or such a folder)",
                        input="model") from None
    return Captioner(model.eval().to(device), processor)


class Caption(Node):
    """Describe an image in words with a captioning model. A ``prompt`` starts the caption (conditional
    captioning: "a photograph of"); the caption includes it. Greedy decoding: the same image gives the same text."""

    type_id = "image.caption"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        image: Image = Field(description="Images to describe")
        model: str = ModelInput("blip-base", kind=CAPTIONER, description="blip-base, blip-large, tiny/blip (random "
                                                                         "words), a Hub id or a local folder of a "
                                                                         "BLIP-style model")
        prompt: str = Field("", description="Text the caption starts with (optional)")
        max_new_tokens: int = Field(30, ge=1, le=512, description="Longest caption, in tokens")

    class Outputs(NodeOutputs):
        text: str = Field(description="The caption (one line per image for a batch)")
        texts: list[str] = Field(description="One caption per image")

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch

        captioner = ctx.models.load(inputs.model, load_captioner)
        pictures = [picture.convert("RGB") for picture in inputs.image.to_pil()]
        text = [inputs.prompt] * len(pictures) if inputs.prompt else None
        batch = captioner.processor(images=pictures, text=text, return_tensors="pt")
        batch = batch.to(captioner.model.device)
        ctx.progress(0, 1)
        with torch.inference_mode():
            tokens = captioner.model.generate(**batch, max_new_tokens=inputs.max_new_tokens, do_sample=False)
        ctx.progress(1, 1)
        captions = [c.strip() for c in captioner.processor.batch_decode(tokens, skip_special_tokens=True)]
        return self.Outputs(text="\n".join(captions), texts=captions)
