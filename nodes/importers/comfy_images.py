"""ComfyUI picture and mask nodes -> nodeforge's image and mask nodes (load, upscale, resize, pad, invert, grow,
canny) and the save and preview nodes that become graph outputs."""

from __future__ import annotations

from typing import Any

from nodeforge.nodes.importers.comfy_values import Evaluator, Lazy, MaskRef, Named, Pixels
from nodeforge.nodes.importers.comfy_workflow import ComfyNode

FILTERS = {"nearest-exact": "nearest", "nearest": "nearest", "bilinear": "bilinear", "area": "area",
           "bicubic": "bicubic"}


def load_image(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    path = ev.text(node, "image")
    loaded = ev.builder.add("load", node.id, "image.load", {"path": ev.builder.bind_file("image", path)}, node.pos)
    channel = {"alpha": "alpha", "red": "red", "green": "green", "blue": "blue"}.get(
        str(node.inputs.get("channel", "alpha")).lower(), "alpha")

    def mask() -> MaskRef:
        made = ev.builder.add("mask", node.id, "mask.from_image",
                              {"image": {"from": f"{loaded}.image"}, "channel": channel}, _below(node))
        return MaskRef(f"{made}.mask")

    if node.class_type == "LoadImageMask":
        return (mask(),)
    return Pixels(f"{loaded}.image"), Lazy(mask)


def _below(node: ComfyNode) -> tuple[float, float] | None:
    return (node.pos[0], node.pos[1] + 200) if node.pos else None


def upscale_with_model(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    model, image = ev.typed(node, "upscale_model", Named), ev.typed(node, "image", Pixels)
    inputs = {"image": {"from": image.ref}, "model": ev.builder.bind_file("upscaler", model.name)}
    made = ev.builder.add("upscale", node.id, "image.upscale", inputs, node.pos)
    return (Pixels(f"{made}.image"),)


def image_scale(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Pixels(resize(ev, node, ev.typed(node, "image", Pixels).ref)),)


def resize(ev: Evaluator, node: ComfyNode, image: str, factor: float | None = None) -> str:
    """An ``image.resize`` of ``image`` by the node's ``scale_by``, its width and height, or ``factor`` when the
    caller derived the size from the pass before (so it follows the graph's width and height)."""
    method = ev.text(node, "upscale_method", "bicubic")
    inputs: dict[str, Any] = {"image": {"from": image}, "filter": FILTERS.get(method, "bicubic")}
    if method not in FILTERS:
        ev.warn(node, f"upscale_method {method} is not available; using bicubic")
    if factor is not None:
        inputs["scale"] = factor
    elif "scale_by" in node.inputs:
        inputs["scale"] = ev.number(node, "scale_by")
    elif "megapixels" in node.inputs:
        inputs["megapixels"] = ev.number(node, "megapixels", 1.0)
    else:
        inputs.update(width=ev.integer(node, "width", 0), height=ev.integer(node, "height", 0),
                      mode="stretch" if ev.text(node, "crop", "disabled") == "disabled" else "fill")
    return ev.builder.add("resize", node.id, "image.resize", inputs, node.pos) + ".image"


def repeat_batch(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    times = ev.integer(node, "amount", 1)
    if times > 64:
        ev.warn(node, f"amount {times} is above nodeforge's batch limit; repeating 64 times")
    made = ev.builder.add("repeat", node.id, "image.repeat", {"image": {"from": ev.typed(node, "image", Pixels).ref},
                                                               "times": max(1, min(times, 64))}, node.pos)
    return (Pixels(f"{made}.image"),)


def mask_to_image(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    made = ev.builder.add("picture", node.id, "mask.to_image", {"mask": {"from": ev.typed(node, "mask", MaskRef).ref}},
                          node.pos)
    return (Pixels(f"{made}.image"),)


def pad_for_outpaint(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    inputs: dict[str, Any] = {"image": {"from": ev.typed(node, "image", Pixels).ref}}
    for side in ("left", "top", "right", "bottom"):
        inputs[side] = ev.integer(node, side, 0)
    inputs["feather"] = ev.integer(node, "feathering", 40)
    made = ev.builder.add("pad", node.id, "image.pad", inputs, node.pos)
    return Pixels(f"{made}.image"), MaskRef(f"{made}.mask")


def invert_mask(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    made = ev.builder.add("invert", node.id, "mask.invert", {"mask": {"from": ev.typed(node, "mask", MaskRef).ref}},
                          node.pos)
    return (MaskRef(f"{made}.mask"),)


def grow_mask(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    mask = ev.typed(node, "mask", MaskRef)
    made = ev.builder.add("grow", node.id, "mask.grow", {"mask": {"from": mask.ref},
                                                         "pixels": ev.integer(node, "expand", 0)}, node.pos)
    return (MaskRef(f"{made}.mask"),)


def image_to_mask(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """A channel as the mask, as ComfyUI reads it (its alpha as it is: nodeforge's alpha reading is 1 - alpha, so an
    invert follows)."""
    image = ev.typed(node, "image", Pixels)
    channel = ev.text(node, "channel", "red")
    if channel not in ("red", "green", "blue", "alpha"):
        raise ev.fail(node, f"channel '{channel}' is not one of red, green, blue, alpha", "channel")
    made = ev.builder.add("mask", node.id, "mask.from_image", {"image": {"from": image.ref}, "channel": channel},
                          node.pos) + ".mask"
    if channel == "alpha":
        made = ev.builder.add("invert", node.id, "mask.invert", {"mask": {"from": made}}, _below(node)) + ".mask"
    return (MaskRef(made),)


def canny(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    image = ev.typed(node, "image", Pixels)
    low, high = ev.number(node, "low_threshold", 0.4), ev.number(node, "high_threshold", 0.8)
    made = ev.builder.add("canny", node.id, "image.canny", {"image": {"from": image.ref}, "low": round(low * 255),
                                                            "high": round(high * 255)}, node.pos)
    return (Pixels(f"{made}.image"),)


def save(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    image = ev.typed(node, "images", Pixels)
    if node.class_type == "SaveImage":
        prefix = str(node.inputs.get("filename_prefix") or "ComfyUI")
        name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in prefix.rsplit("/", 1)[-1]).strip("._-")
        ev.builder.add("save", node.id, "image.save", {"image": {"from": image.ref}, "name": name or "ComfyUI"},
                       node.pos)
        ev.builder.output("image", image.ref, _below(node))
    else:
        ev.builder.output("preview", image.ref, node.pos)
    return ()


HANDLERS: dict[str, Any] = {
    "ImageUpscaleWithModel": upscale_with_model, "LoadImage": load_image, "LoadImageMask": load_image,
    "ImageScale": image_scale, "ImageScaleBy": image_scale, "ImageScaleToTotalPixels": image_scale,
    "RepeatImageBatch": repeat_batch, "MaskToImage": mask_to_image, "ImagePadForOutpaint": pad_for_outpaint,
    "InvertMask": invert_mask, "ImageToMask": image_to_mask, "GrowMask": grow_mask, "Canny": canny,
    "SaveImage": save, "PreviewImage": save,
}
