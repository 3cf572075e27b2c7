"""ssitu's UltimateSDUpscale onto an ``image.upscale`` with the workflow's upscaler, a resize to the size the node
asks for, and one ``image.transform`` pass that re-draws the result: the same steps as the custom node, except that
nodeforge re-draws the whole picture at once instead of tile by tile (said in a note)."""

from __future__ import annotations

import re
from typing import Any

from nodeforge.nodes.importers import comfy_sample as samplers
from nodeforge.nodes.importers.comfy_values import Cond, Evaluator, Latent, Model, Named, Pixels
from nodeforge.nodes.importers.comfy_workflow import ComfyNode

FACTOR = re.compile(r"(?:^|[^a-z0-9])(?:(\d)x|x(\d))(?:[^a-z0-9]|$)", re.IGNORECASE)


def upscaler_factor(name: str) -> int | None:
    """The factor an upscaler's file name states (``4x-UltraSharp``, ``RealESRGAN_x2``), else None."""
    found = FACTOR.search(name.rsplit("/", 1)[-1])
    return int(found.group(1) or found.group(2)) if found else None


def ultimate_upscale(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    image, upscaler = ev.typed(node, "image", Pixels), ev.typed(node, "upscale_model", Named)
    by = ev.number(node, "upscale_by", 2.0)
    factor = upscaler_factor(upscaler.name)
    if factor is None:
        raise ev.fail(node, f"the upscaler {upscaler.name} does not state its factor in its name, so the size "
                            f"upscale_by {by:g} makes cannot be reproduced", "upscale_model")
    build = ev.builder
    inputs = {"image": {"from": image.ref}, "model": build.bind_file("upscaler", upscaler.name)}
    ref = build.add("upscale", node.id, "image.upscale", inputs, node.pos) + ".image"
    if by != factor:
        ev.warn(node, f"the {factor}x upscale is resized by {by / factor:g} to make upscale_by {by:g}")
        ref = build.add("resize", node.id, "image.resize", {"image": {"from": ref}, "scale": round(by / factor, 6),
                                                            "filter": "bicubic"}, node.pos) + ".image"
    ev.warn(node, "the upscaled picture is re-drawn whole in one image.transform pass, not tile by tile (tile "
                  "sizes, padding and seam fixes are not carried over; a large picture needs more memory)")
    step = samplers.Pass(model=ev.typed(node, "model", Model), positive=ev.typed(node, "positive", Cond),
                         negative=ev.optional(node, "negative", Cond), latent=Latent("pixels", image=ref),
                         seed=ev.integer(node, "seed", 0), steps=ev.integer(node, "steps", 20),
                         cfg=ev.number(node, "cfg", 8.0), sampler=ev.text(node, "sampler_name", "euler"),
                         scheduler=ev.text(node, "scheduler", "normal"), strength=ev.number(node, "denoise", 0.2))
    return (Pixels(samplers.sample(ev, node, step).image),)


HANDLERS: dict[str, Any] = {"UltimateSDUpscale": ultimate_upscale}
