"""ComfyUI loaders and conditioning -> the symbolic values the samplers read: a ``Model`` (file, LoRAs), a
``Clip`` (text encoder files), a ``Vae``, a ``Cond`` (prompt, controls, guidance). Nothing is added to the graph
here except the ``image.controlnet`` node a ControlNet apply becomes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nodeforge.nodes.importers.comfy_families import family_of_clip_type, family_of_file
from nodeforge.nodes.importers.comfy_values import (
    MAX_CONTROLS,
    MAX_LORAS,
    Clip,
    Cond,
    Evaluator,
    Lora,
    Model,
    Named,
    Pixels,
    Vae,
)
from nodeforge.nodes.importers.comfy_workflow import ComfyNode

PAIRED_CONTROLS = ("ControlNetApplyAdvanced", "ControlNetApplySD3")
"""ControlNet applies that steer the positive and negative conditioning together, with a step range."""
FLOW_HINTS = ("flux", "sd3", "sd3.5", "sd35", "schnell")


def _flow(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in FLOW_HINTS)


def checkpoint(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    name = ev.text(node, "ckpt_name")
    family = _family(ev, node, name)
    return Model(name, flow=_flow(name), family=family), Clip((name,), flow=_flow(name)), Vae(name, own=True)


def unet(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    name = ev.text(node, "unet_name")
    return (Model(name, flow=True, bare=True, family=_family(ev, node, name)),)


def _family(ev: Evaluator, node: ComfyNode, name: str) -> str:
    """nodeforge's family for a model file whose name announces one; a family nodeforge does not run fails the
    node by that family's name."""
    family = family_of_file(name)
    if family is not None and not family.runs:
        raise ev.fail(node, family.refusal(name))
    return family.ours if family else ""


def dual_clip(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    kind = _clip_type(ev, node, "sdxl")
    return (Clip((ev.text(node, "clip_name1"), ev.text(node, "clip_name2")), flow=kind in ("flux", "sd3")),)


def single_clip(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Clip((ev.text(node, "clip_name"),), flow=_clip_type(ev, node, "") in ("flux", "sd3")),)


def triple_clip(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """SD3's three text encoder files (CLIP-L, CLIP-G, T5)."""
    return (Clip(tuple(ev.text(node, f"clip_name{index}") for index in (1, 2, 3)), flow=True),)


def _clip_type(ev: Evaluator, node: ComfyNode, default: str) -> str:
    kind = str(node.inputs.get("type", default))
    family = family_of_clip_type(kind)
    if family is not None and not family.runs:
        raise ev.fail(node, f"its text encoders (type {kind}) are for {family.name}: nodeforge does not run the "
                            f"{family.name} family")
    return kind


def vae_loader(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Vae(ev.text(node, "vae_name"), own=False),)


def lora(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    model = ev.typed(node, "model", Model)
    if len(model.loras) >= MAX_LORAS:
        raise ev.fail(node, f"more than {MAX_LORAS} LoRAs on one model", "model")
    name, weight = ev.text(node, "lora_name"), ev.number(node, "strength_model", 1.0)
    if node.class_type == "LoraLoaderModelOnly":
        return (replace(model, loras=(*model.loras, Lora(name, weight))) if weight else model,)
    clip_weight = ev.number(node, "strength_clip", 1.0)
    if clip_weight != weight:
        ev.warn(node, f"one weight per LoRA in nodeforge: strength_model {weight} is used, strength_clip "
                      f"{clip_weight} is not")
    updated = replace(model, loras=(*model.loras, Lora(name, weight))) if weight else model
    return updated, ev.typed(node, "clip", Clip)


def clip_skip(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """The layer is read by the sampler that uses the prompt (``comfy_sample``: ``clip_layer``)."""
    return (ev.typed(node, "clip", Clip),)


def model_sampling(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """ModelSamplingFlux's and ModelSamplingSD3's shift is read by the sampler (``comfy_sample``: ``flow_shift``);
    the others' settings are not carried over."""
    model = ev.typed(node, "model", Model)
    if node.class_type in ("ModelSamplingFlux", "ModelSamplingSD3"):
        return (replace(model, flow=True),)
    ev.warn(node, "the model's own sampling settings are used (this node's are not carried over)")
    return (model,)


def encode(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    clip = ev.typed(node, "clip", Clip)
    if node.class_type == "CLIPTextEncodeSDXL":
        text, other = ev.text(node, "text_g", ""), ev.text(node, "text_l", "")
        if other and other != text:
            ev.warn(node, "text_l differs from text_g; nodeforge gives both encoders text_g")
        return (Cond(text, clip),)
    if node.class_type == "CLIPTextEncodeFlux":
        text = ev.text(node, "t5xxl", "") or ev.text(node, "clip_l", "")
        return (Cond(text, clip, guidance=ev.number(node, "guidance", 3.5)),)
    return (Cond(ev.text(node, "text", ""), clip),)


def zero_out(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Cond("", ev.typed(node, "conditioning", Cond).clip),)


def flux_guidance(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (replace(ev.typed(node, "conditioning", Cond), guidance=ev.number(node, "guidance", 3.5)),)


def named(kind: str, key: str) -> Any:
    def load(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
        return (Named(kind, ev.text(node, key)),)

    return load


def controlnet_loader(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """A ControlNet file; a T2I-Adapter (which ControlNetLoader also loads) or a diff ControlNet (added to the
    model's weights) is refused: nodeforge runs plain ControlNets only."""
    name = ev.text(node, "control_net_name")
    lowered = name.lower().replace("-", "").replace("_", "")
    if "t2iadapter" in lowered or "coadapter" in lowered:
        raise ev.fail(node, f"{name} is a T2I-Adapter: nodeforge runs ControlNets, not T2I-Adapters",
                      "control_net_name")
    if node.class_type == "DiffControlNetLoader":
        raise ev.fail(node, f"{name} is loaded as a diff ControlNet (its weights added to the model's): nodeforge "
                            "runs plain ControlNets only", "control_net_name")
    return (Named("controlnet", name),)


def controlnet(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    model = ev.typed(node, "control_net", Named)
    paired = node.class_type in PAIRED_CONTROLS
    for name in ("positive", "negative") if paired else ("conditioning",):
        if len(ev.typed(node, name, Cond).controls) >= MAX_CONTROLS:
            raise ev.fail(node, f"more than {MAX_CONTROLS} ControlNets on one conditioning", name)
    image = ev.typed(node, "image", Pixels)
    inputs: dict[str, Any] = {"image": {"from": image.ref}, "model": ev.builder.bind_file("controlnet", model.name),
                              "weight": round(ev.number(node, "strength", 1.0), 4)}
    if paired:
        inputs.update(start=ev.number(node, "start_percent", 0.0), end=ev.number(node, "end_percent", 1.0))
    if model.mode:
        inputs["mode"] = model.mode
    control = ev.builder.add("controlnet", node.id, "image.controlnet", inputs, node.pos)
    if paired:
        positive, negative = ev.typed(node, "positive", Cond), ev.typed(node, "negative", Cond)
        return (replace(positive, controls=(*positive.controls, control)),
                replace(negative, controls=(*negative.controls, control)))
    cond = ev.typed(node, "conditioning", Cond)
    return (replace(cond, controls=(*cond.controls, control)),)


HANDLERS: dict[str, Any] = {
    "CheckpointLoaderSimple": checkpoint, "CheckpointLoader": checkpoint, "unCLIPCheckpointLoader": checkpoint,
    "UNETLoader": unet, "DualCLIPLoader": dual_clip, "CLIPLoader": single_clip, "VAELoader": vae_loader,
    "UnetLoaderGGUF": unet, "DualCLIPLoaderGGUF": dual_clip, "CLIPLoaderGGUF": single_clip,
    "LoraLoader": lora, "LoraLoaderModelOnly": lora, "CLIPSetLastLayer": clip_skip,
    "ModelSamplingFlux": model_sampling, "ModelSamplingSD3": model_sampling, "ModelSamplingDiscrete": model_sampling,
    "ModelSamplingAuraFlow": model_sampling,
    "CLIPTextEncode": encode, "CLIPTextEncodeSDXL": encode, "CLIPTextEncodeSDXLRefiner": encode,
    "CLIPTextEncodeFlux": encode, "ConditioningZeroOut": zero_out, "FluxGuidance": flux_guidance,
    "ControlNetLoader": controlnet_loader, "DiffControlNetLoader": controlnet_loader,
    "ControlNetApply": controlnet, "ControlNetApplyAdvanced": controlnet, "ControlNetApplySD3": controlnet,
    "TripleCLIPLoader": triple_clip,
    "UpscaleModelLoader": named("upscaler", "model_name"),
}
