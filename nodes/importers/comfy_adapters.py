"""What steers a ComfyUI picture besides the prompt, onto nodeforge's control nodes: cubiq's IP-Adapter nodes
(``IPAdapterUnifiedLoader`` + ``IPAdapter``, ``IPAdapterModelLoader`` + ``IPAdapterAdvanced``) become
``image.ip_adapter`` controls of the passes that use the adapted model; ``SetUnionControlNetType`` becomes the
ControlNet-Union ``mode``; the controlnet_aux preprocessors that nodeforge has an equal of become ``image.canny`` or
``image.depth``. What is carried only approximately is said in a note."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nodeforge.nodes.importers.comfy_values import Evaluator, Model, Named, Pixels
from nodeforge.nodes.importers.comfy_workflow import ComfyNode

# IPAdapterUnifiedLoader presets -> nodeforge's aliases of the same h94/IP-Adapter files, by base family.
PRESETS = {"STANDARD (medium strength)": ("ip-adapter-sd15", "ip-adapter-sdxl"),
           "PLUS (high strength)": ("ip-adapter-plus-sd15", "ip-adapter-plus-sdxl")}
UNION_TYPES = {"openpose": "openpose", "depth": "depth", "hed/pidi/scribble/ted": "scribble",
               "canny/lineart/anime_lineart/mlsd": "canny", "normal": "normal", "segment": "segment", "tile": "tile",
               "repaint": "repaint"}
DEPTH_MODEL = "depth-anything-small"


def unified_loader(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """The preset names the adapter file the custom node would load; nodeforge's alias of that file stands in."""
    model = ev.typed(node, "model", Model)
    preset = ev.text(node, "preset", "STANDARD (medium strength)")
    aliases = PRESETS.get(preset)
    if aliases is None:
        raise ev.fail(node, f"the IP-Adapter preset '{preset}' has no nodeforge equivalent (STANDARD and PLUS do)",
                      "preset")
    alias = aliases[1] if "xl" in model.name.lower() else aliases[0]
    return model, Named("ip_adapter", alias)


def model_loader(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Named("ip_adapter", ev.text(node, "ipadapter_file")),)


def clip_vision_loader(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Named("clip_vision", ev.text(node, "clip_name")),)


def ip_adapter(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """The adapter as a control of the model; the passes that sample with the model take it (``comfy_map``)."""
    model = ev.typed(node, "model", Model)
    adapter = ev.typed(node, "ipadapter", Named)
    image = ev.typed(node, "image", Pixels)
    start, end = ev.number(node, "start_at", 0.0), ev.number(node, "end_at", 1.0)
    weight_type = ev.text(node, "weight_type", "standard")
    if (start, end) != (0.0, 1.0) or weight_type not in ("standard", "linear"):
        ev.warn(node, f"the adapter acts on every step with a plain weight (start_at {start:g}, end_at {end:g} and "
                      f"weight_type '{weight_type}' are not carried over)")
    if node.inputs.get("image_negative") is not None or node.inputs.get("attn_mask") is not None:
        raise ev.fail(node, "a negative picture or an attention mask has no nodeforge equivalent")
    if node.inputs.get("clip_vision") is not None:
        vision = ev.typed(node, "clip_vision", Named)
        ev.warn(node, f"the CLIP vision file {vision.name} is not used: nodeforge takes the image encoder beside the "
                      "IP-Adapter file (or its alias's)")
    weight = ev.number(node, "weight", 1.0)
    if not 0.0 <= weight <= 2.0:
        raise ev.fail(node, f"weight {weight:g} is outside nodeforge's 0..2", "weight")
    made = ev.builder.add("ip_adapter", node.id, "image.ip_adapter",
                          {"image": {"from": image.ref}, "model": ev.builder.bind_file("ip_adapter", adapter.name),
                           "weight": round(weight, 4)}, node.pos)
    return (replace(model, controls=(*model.controls, made)),)


def prep_for_clip_vision(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """The picture passes through: ``image.ip_adapter``'s image processor resizes and centre-crops it for the
    encoder as this node does with its defaults."""
    position, sharpening = ev.text(node, "crop_position", "center"), ev.number(node, "sharpening", 0.0)
    if position != "center" or sharpening:
        ev.warn(node, f"the IP-Adapter's own processor centre-crops the picture (crop_position '{position}' and "
                      f"sharpening {sharpening:g} are not carried over)")
    return (ev.typed(node, "image", Pixels),)


def union_type(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    control = ev.typed(node, "control_net", Named)
    kind = ev.text(node, "type", "auto")
    if kind == "auto":
        return (control,)
    mode = UNION_TYPES.get(kind)
    if mode is None:
        raise ev.fail(node, f"union type '{kind}' has no nodeforge equivalent", "type")
    return (replace(control, mode=mode),)


def canny_preprocessor(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """controlnet_aux's Canny takes 0..255 thresholds, as ``image.canny`` does; its ``resolution`` resize is not
    carried over (nodeforge finds edges at the picture's own size)."""
    image = ev.typed(node, "image", Pixels)
    _note_resolution(ev, node)
    made = ev.builder.add("canny", node.id, "image.canny", {"image": {"from": image.ref},
                                                            "low": ev.integer(node, "low_threshold", 100),
                                                            "high": ev.integer(node, "high_threshold", 200)}, node.pos)
    return (Pixels(f"{made}.image"),)


def depth_preprocessor(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    image = ev.typed(node, "image", Pixels)
    _note_resolution(ev, node)
    ev.warn(node, f"depth is estimated with nodeforge's image.depth ({DEPTH_MODEL}, the graph's depth input), not "
                  f"with {node.class_type}'s own estimator: near is bright in both, the values differ")
    made = ev.builder.add("depth", node.id, "image.depth",
                          {"image": {"from": image.ref}, "model": ev.builder.bind_file("depth", DEPTH_MODEL)}, node.pos)
    return (Pixels(f"{made}.image"),)


def _note_resolution(ev: Evaluator, node: ComfyNode) -> None:
    if "resolution" in node.inputs:
        ev.warn(node, f"resolution {node.inputs['resolution']} is not carried over: the control picture keeps the "
                      "input's size")


HANDLERS: dict[str, Any] = {
    "IPAdapterUnifiedLoader": unified_loader, "IPAdapterModelLoader": model_loader, "IPAdapter": ip_adapter,
    "IPAdapterAdvanced": ip_adapter, "CLIPVisionLoader": clip_vision_loader,
    "PrepImageForClipVision": prep_for_clip_vision,
    "SetUnionControlNetType": union_type, "CannyEdgePreprocessor": canny_preprocessor,
    "MiDaS-DepthMapPreprocessor": depth_preprocessor, "DepthAnythingPreprocessor": depth_preprocessor,
    "DepthAnythingV2Preprocessor": depth_preprocessor, "Zoe-DepthMapPreprocessor": depth_preprocessor,
}
