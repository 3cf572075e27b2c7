"""ComfyUI core nodes -> nodeforge nodes (see ``HANDLERS`` for the classes), and ``map_workflow``, which translates
a whole workflow from its outputs (SaveImage, PreviewImage) back.

Loaders, LoRAs, text encoders and latents collapse into the inputs of the diffusion node a sampler becomes (see
``comfy_sample``); image operations become their nodeforge node. A node of another class, or a link this importer
cannot follow, is reported by id and class; the import fails unless it is ``partial``, which keeps every output
that does not depend on such a node (and the images that fed the nodes it left out, as graph outputs).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nodeforge.nodes.importers import comfy_sample as samplers
from nodeforge.nodes.importers.builder import Builder
from nodeforge.nodes.importers.comfy_values import (
    MAX_CONTROLS,
    MAX_LORAS,
    Clip,
    Cond,
    Evaluator,
    Latent,
    Lazy,
    Lora,
    MaskRef,
    Model,
    Named,
    NotMapped,
    Pixels,
    Vae,
)
from nodeforge.nodes.importers.comfy_workflow import ComfyNode, Link, Workflow
from nodeforge.nodes.importers.result import ImportFailed, ImportResult, Unmapped

FLOW_HINTS = ("flux", "sd3", "sd3.5", "sd35", "schnell")
FILTERS = {"nearest-exact": "nearest", "nearest": "nearest", "bilinear": "bilinear", "area": "area",
           "bicubic": "bicubic"}
SINKS = ("SaveImage", "PreviewImage")


def _flow(name: str) -> bool:
    lowered = name.lower()
    return any(hint in lowered for hint in FLOW_HINTS)


def checkpoint(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    name = ev.text(node, "ckpt_name")
    return Model(name, flow=_flow(name)), Clip((name,), flow=_flow(name)), Vae(name, own=True)


def unet(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Model(ev.text(node, "unet_name"), flow=True, bare=True),)


def dual_clip(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    kind = str(node.inputs.get("type", "sdxl"))
    return (Clip((ev.text(node, "clip_name1"), ev.text(node, "clip_name2")), flow=kind in ("flux", "sd3")),)


def single_clip(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Clip((ev.text(node, "clip_name"),), flow=str(node.inputs.get("type", "")) in ("flux", "sd3")),)


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
    layer = ev.integer(node, "stop_at_clip_layer", -1)
    if layer != -1:
        ev.warn(node, f"stop_at_clip_layer {layer} (clip skip {-layer}) is not supported; the last layer is used")
    return (ev.typed(node, "clip", Clip),)


def model_sampling(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    model = ev.typed(node, "model", Model)
    if node.class_type == "ModelSamplingFlux":
        return (replace(model, flow=True),)  # diffusers' Flux pipeline shifts by image size itself
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


def controlnet(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    model = ev.typed(node, "control_net", Named)
    for name in ("positive", "negative") if node.class_type == "ControlNetApplyAdvanced" else ("conditioning",):
        if len(ev.typed(node, name, Cond).controls) >= MAX_CONTROLS:
            raise ev.fail(node, f"more than {MAX_CONTROLS} ControlNets on one conditioning", name)
    image = ev.typed(node, "image", Pixels)
    inputs: dict[str, Any] = {"image": {"from": image.ref}, "model": model.name,
                              "weight": round(ev.number(node, "strength", 1.0), 4)}
    if node.class_type == "ControlNetApplyAdvanced":
        inputs.update(start=ev.number(node, "start_percent", 0.0), end=ev.number(node, "end_percent", 1.0))
    control = ev.builder.add("controlnet", node.id, "image.controlnet", inputs, node.pos)
    if node.class_type == "ControlNetApplyAdvanced":
        positive, negative = ev.typed(node, "positive", Cond), ev.typed(node, "negative", Cond)
        return (replace(positive, controls=(*positive.controls, control)),
                replace(negative, controls=(*negative.controls, control)))
    cond = ev.typed(node, "conditioning", Cond)
    return (replace(cond, controls=(*cond.controls, control)),)


def empty_latent(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Latent("empty", ev.integer(node, "width", 512), ev.integer(node, "height", 512),
                   ev.integer(node, "batch_size", 1)),)


def pixels_of(ev: Evaluator, node: ComfyNode, latent: Latent) -> str:
    if latent.kind == "empty":
        raise ev.fail(node, "an empty latent has no picture to decode or resize")
    return latent.image


def vae_encode(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Latent("pixels", image=ev.typed(node, "pixels", Pixels).ref),)


def inpaint_encode(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    image, mask = ev.typed(node, "pixels", Pixels), ev.typed(node, "mask", MaskRef)
    grow = ev.integer(node, "grow_mask_by", 6)
    ref = mask.ref
    if grow > 0:
        ref = ev.builder.add("grow", node.id, "mask.grow", {"mask": {"from": ref}, "pixels": grow}, node.pos) + ".mask"
    return (Latent("inpaint", image=image.ref, mask=ref),)


def noise_mask(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    latent = ev.typed(node, "samples", Latent)
    return (Latent("inpaint", image=pixels_of(ev, node, latent), mask=ev.typed(node, "mask", MaskRef).ref),)


def latent_upscale(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    image = pixels_of(ev, node, ev.typed(node, "samples", Latent))
    ev.warn(node, "the latent is resized as a picture (decoded, resized, encoded again by the next pass)")
    resized = _resize(ev, node, image)
    return (Latent("pixels", image=resized),)


def vae_decode(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    latent = ev.typed(node, "samples", Latent)
    vae = ev.optional(node, "vae", Vae)
    if latent.kind == "sampled" and latent.model is not None and vae is not None:
        _carry_components(ev, node, latent, vae)
    return (Pixels(pixels_of(ev, node, latent)),)


def _carry_components(ev: Evaluator, node: ComfyNode, latent: Latent, vae: Vae) -> None:
    """The workflow's separate component files, on the diffusion node that ``latent`` comes from: its VAE file as the
    node's ``vae`` input; the text encoder files, which the node has no input for, in a warning that names them (and,
    for a bare diffusion model, the alias that assembles them, also written into the model input's description)."""
    model = latent.model
    assert model is not None
    inputs = ev.builder.nodes[latent.origin]["inputs"]
    if not vae.own:
        if ev.vae_port:
            inputs["vae"] = ev.builder.bind("vae", vae.name, "text")
        else:
            ev.warn(node, f"the VAE file {vae.name} is not used: the checkpoint's own VAE decodes")
    encoders = latent.clip.files if latent.clip else ()
    if model.bare:
        t5 = [f for f in encoders if "t5" in f.lower()]
        clip_l = [f for f in encoders if f not in t5]
        family = "sd3" if "sd3" in model.name.lower() else "flux"
        parts = [f'transformer = "{model.name}"', *(f'text_encoder = "{f}"' for f in clip_l[:1]),
                 *(f'text_encoder_2 = "{f}"' for f in t5[:1]), f'vae = "{vae.name}"']
        alias = f'[aliases.my-model] family = "{family}", {", ".join(parts)}'
        carried = f"its VAE {vae.name} is the graph's vae input, but " if "vae" in inputs else ""
        ev.warn(node, f"{model.name} is a bare diffusion model file (UNETLoader): {carried}image.generate takes no "
                      f"text encoder files; assemble it with its text encoders and VAE as an alias in models.toml, "
                      f"e.g. {alias}, then --set model=my-model")
        bound = inputs.get("model")
        if isinstance(bound, dict) and bound.get("input") in ev.builder.inputs:
            ev.builder.inputs[bound["input"]]["description"] = (
                f"{model.name} is a bare diffusion model: make it an alias with its text encoders and VAE in "
                f"models.toml ({alias}) and set this to my-model (or tiny/flux, with vae empty, to try it offline)")
    elif encoders and encoders != (model.name,):
        ev.warn(node, f"the text encoder file(s) {', '.join(encoders)} are not used: image.generate takes no text "
                      f"encoder input, so the model's own encoders are; an alias in models.toml can name them "
                      f"(text_encoder = ..., with model = \"{model.name}\")")


def load_image(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    path = ev.text(node, "image")
    loaded = ev.builder.add("load", node.id, "image.load", {"path": path}, node.pos)
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
    made = ev.builder.add("upscale", node.id, "image.upscale", {"image": {"from": image.ref}, "model": model.name},
                          node.pos)
    return (Pixels(f"{made}.image"),)


def image_scale(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Pixels(_resize(ev, node, ev.typed(node, "image", Pixels).ref)),)


def _resize(ev: Evaluator, node: ComfyNode, image: str) -> str:
    method = ev.text(node, "upscale_method", "bicubic")
    inputs: dict[str, Any] = {"image": {"from": image}, "filter": FILTERS.get(method, "bicubic")}
    if method not in FILTERS:
        ev.warn(node, f"upscale_method {method} is not available; using bicubic")
    if "scale_by" in node.inputs:
        inputs["scale"] = ev.number(node, "scale_by")
    else:
        inputs.update(width=ev.integer(node, "width", 0), height=ev.integer(node, "height", 0),
                      mode="stretch" if ev.text(node, "crop", "disabled") == "disabled" else "fill")
    return ev.builder.add("resize", node.id, "image.resize", inputs, node.pos) + ".image"


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


def canny(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    image = ev.typed(node, "image", Pixels)
    low, high = ev.number(node, "low_threshold", 0.4), ev.number(node, "high_threshold", 0.8)
    made = ev.builder.add("canny", node.id, "image.canny", {"image": {"from": image.ref}, "low": round(low * 255),
                                                            "high": round(high * 255)}, node.pos)
    return (Pixels(f"{made}.image"),)


def primitive(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (ev.value(node, "value"),)


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
    "CheckpointLoaderSimple": checkpoint, "CheckpointLoader": checkpoint, "unCLIPCheckpointLoader": checkpoint,
    "UNETLoader": unet, "DualCLIPLoader": dual_clip, "CLIPLoader": single_clip, "VAELoader": vae_loader,
    "LoraLoader": lora, "LoraLoaderModelOnly": lora, "CLIPSetLastLayer": clip_skip,
    "ModelSamplingFlux": model_sampling, "ModelSamplingSD3": model_sampling, "ModelSamplingDiscrete": model_sampling,
    "CLIPTextEncode": encode, "CLIPTextEncodeSDXL": encode, "CLIPTextEncodeSDXLRefiner": encode,
    "CLIPTextEncodeFlux": encode, "ConditioningZeroOut": zero_out, "FluxGuidance": flux_guidance,
    "ControlNetLoader": named("controlnet", "control_net_name"),
    "DiffControlNetLoader": named("controlnet", "control_net_name"),
    "ControlNetApply": controlnet, "ControlNetApplyAdvanced": controlnet,
    "UpscaleModelLoader": named("upscaler", "model_name"), "ImageUpscaleWithModel": upscale_with_model,
    "EmptyLatentImage": empty_latent, "EmptySD3LatentImage": empty_latent, "VAEEncode": vae_encode,
    "VAEEncodeForInpaint": inpaint_encode, "SetLatentNoiseMask": noise_mask, "LatentUpscale": latent_upscale,
    "LatentUpscaleBy": latent_upscale, "VAEDecode": vae_decode, "VAEDecodeTiled": vae_decode,
    "KSampler": samplers.ksampler, "KSamplerAdvanced": samplers.ksampler_advanced,
    "SamplerCustomAdvanced": samplers.sampler_custom_advanced, "SamplerCustom": samplers.sampler_custom,
    "RandomNoise": samplers.random_noise, "BasicGuider": samplers.basic_guider, "CFGGuider": samplers.cfg_guider,
    "KSamplerSelect": samplers.sampler_select, "BasicScheduler": samplers.basic_scheduler,
    "KarrasScheduler": samplers.karras_scheduler,
    "LoadImage": load_image, "LoadImageMask": load_image, "ImageScale": image_scale, "ImageScaleBy": image_scale,
    "ImagePadForOutpaint": pad_for_outpaint, "InvertMask": invert_mask, "GrowMask": grow_mask, "Canny": canny,
    "PrimitiveInt": primitive, "PrimitiveFloat": primitive, "PrimitiveString": primitive,
    "PrimitiveStringMultiline": primitive, "PrimitiveBoolean": primitive,
    "SaveImage": save, "PreviewImage": save,
}


def map_workflow(workflow: Workflow, *, partial: bool = False, name: str = "", vae_port: bool = False) -> ImportResult:
    """Translate a workflow; ImportFailed lists every node that does not map unless ``partial``. Outputs follow the
    sinks' ids, not the order a format lists nodes in, so the API and UI chunks of one picture give one graph."""
    build = Builder(name, f"Imported from a ComfyUI workflow ({workflow.format} format)")
    build.groups = workflow.groups
    ev = Evaluator(workflow, build, HANDLERS, vae_port)
    unmapped: dict[str, Unmapped] = {}
    for node in workflow.nodes.values():
        if node.class_type not in HANDLERS:
            unmapped[node.id] = Unmapped(node.id, node.class_type, "no nodeforge equivalent")
    sinks = sorted((node for node in workflow.nodes.values() if node.class_type in SINKS), key=lambda n: _order(n.id))
    if not sinks and not unmapped:
        raise ImportFailed("the workflow has no SaveImage or PreviewImage node: nothing to import")
    dropped: list[Unmapped] = []
    ev.prepare(node.id for node in sinks)
    for node in sinks:
        try:
            ev.outputs(node.id)
        except NotMapped as exc:
            unmapped.setdefault(exc.item.id, exc.item)
            if exc.item.id != node.id:
                dropped.append(Unmapped(node.id, node.class_type, f"left out: it depends on node {exc.item.id}"))
    if partial:
        _keep_inputs_of(ev, [workflow.nodes[i] for i in sorted(unmapped, key=_order) if i in workflow.nodes])
    found = sorted(unmapped.values(), key=lambda item: _order(item.id))
    if found and not partial:
        raise ImportFailed(f"{len(found)} node(s) cannot be mapped to nodeforge nodes (a partial import, --partial or "
                           "partial=true, keeps the rest)", found)
    if not build.nodes:
        raise ImportFailed("nothing in the workflow could be imported", [*found, *dropped])
    return ImportResult(build.document(), f"comfy-{workflow.format}", build.warnings, [*found, *dropped])


def _keep_inputs_of(ev: Evaluator, nodes: list[ComfyNode]) -> None:
    """Partial imports: the pictures that fed a node left out become graph outputs, so their work is kept."""
    ev.prepare(node.id for node in nodes)
    for node in nodes:
        for name, raw in sorted(node.inputs.items()):
            if not isinstance(raw, Link):
                continue
            try:
                found = ev.value(node, name)
            except NotMapped:
                continue
            if isinstance(found, Pixels | MaskRef):
                ev.builder.output(f"{name}_for_{node.id}", found.ref, node.pos)


def _order(node_id: str) -> tuple[int, int, str]:
    """ComfyUI's numeric ids in numeric order (by length, then digits: no int() of a 5,000-digit id), then the
    others."""
    return (0, len(node_id), node_id) if node_id.isascii() and node_id.isdigit() else (1, 0, node_id)
