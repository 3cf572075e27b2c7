"""ComfyUI core nodes -> nodeforge nodes (see ``HANDLERS`` for the classes), and ``map_workflow``, which translates
a whole workflow from its outputs (SaveImage, PreviewImage) back.

Loaders, LoRAs, text encoders (``comfy_loaders``) and latents (here) collapse into the inputs of the diffusion node
a sampler becomes (``comfy_sample``); picture and mask operations become their nodeforge node (``comfy_images``). A
node of another class, or a link this importer cannot follow, is reported by id, title and class; the import fails
unless it is ``partial``, which keeps every output that does not depend on such a node (and the images that fed the
nodes it left out, as graph outputs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nodeforge.nodes.importers import comfy_adapters as adapters
from nodeforge.nodes.importers import comfy_images as images
from nodeforge.nodes.importers import comfy_loaders as loaders
from nodeforge.nodes.importers import comfy_media as media
from nodeforge.nodes.importers import comfy_sample as samplers
from nodeforge.nodes.importers.builder import Builder
from nodeforge.nodes.importers.comfy_values import (
    Cond,
    Evaluator,
    Latent,
    MaskRef,
    Model,
    NotMapped,
    Pixels,
    Sigmas,
    Vae,
    unknown_reason,
)
from nodeforge.nodes.importers.comfy_workflow import ComfyNode, Link, Workflow
from nodeforge.nodes.importers.result import ImportFailed, ImportResult, Unmapped

SINKS = ("SaveImage", "PreviewImage", *media.SINKS)
Handler = Callable[[Evaluator, ComfyNode], tuple[Any, ...]]
NEAR_FACTOR = 0.05


def empty_latent(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Latent("empty", ev.integer(node, "width", 512), ev.integer(node, "height", 512),
                   ev.integer(node, "batch_size", 1)),)


def pixels_of(ev: Evaluator, node: ComfyNode, latent: Latent) -> str:
    if latent.kind not in ("pixels", "inpaint", "sampled"):
        raise ev.fail(node, f"an {latent.kind} latent has no picture to decode or resize" if latent.kind == "empty"
                      else f"a {latent.kind} latent is not a picture: this node does not apply to it")
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


def inpaint_conditioning(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    """InpaintModelConditioning (Flux Fill, inpainting checkpoints): the picture and mask go to ``image.inpaint``,
    which feeds an inpainting model its masked picture as this node does."""
    image, mask = ev.typed(node, "pixels", Pixels), ev.typed(node, "mask", MaskRef)
    latent = Latent("inpaint", image=image.ref, mask=mask.ref)
    return ev.typed(node, "positive", Cond), ev.typed(node, "negative", Cond), latent


def differential_diffusion(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    ev.warn(node, "the mask's soft edges are blended as nodeforge's image.inpaint does, not step by step as "
                  "Differential Diffusion does")
    return (ev.typed(node, "model", Model),)


def schedule(name: str) -> Handler:
    """SDTurboScheduler and AlignYourStepsScheduler: their sigma schedule by name for the sampler to map."""

    def sigmas(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
        return (Sigmas(name, ev.integer(node, "steps", 1 if name == "sd_turbo" else 10),
                       ev.number(node, "denoise", 1.0)),)

    return sigmas


def noise_mask(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    latent = ev.typed(node, "samples", Latent)
    return (Latent("inpaint", image=pixels_of(ev, node, latent), mask=ev.typed(node, "mask", MaskRef).ref),)


def latent_upscale(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    latent = ev.typed(node, "samples", Latent)
    image = pixels_of(ev, node, latent)
    ev.warn(node, "the latent is resized as a picture (decoded, resized, encoded again by the next pass)")
    resized = images.resize(ev, node, image, _factor_of(ev, node, latent))
    return (Latent("pixels", image=resized),)


def _factor_of(ev: Evaluator, node: ComfyNode, latent: Latent) -> float | None:
    """A hires fix's target size as a factor of the first pass's size, when the workflow's numbers make it one (within
    ``NEAR_FACTOR``, as sizes rounded to multiples of 8 or 64 differ from the exact product), so the second pass
    follows the graph's ``width``/``height``; None for any other size."""
    if "scale_by" in node.inputs or latent.kind != "sampled" or latent.width <= 0 or latent.height <= 0:
        return None
    width, height = ev.integer(node, "width", 0), ev.integer(node, "height", 0)
    if width <= 0 or height <= 0:
        return None
    across, down = width / latent.width, height / latent.height
    if abs(across - down) > NEAR_FACTOR * across:
        return None
    factor = round(across, 6)
    exact = width * latent.height == height * latent.width
    made = "" if exact else f" ({round(latent.width * factor)}x{round(latent.height * factor)} at the workflow's size)"
    ev.warn(node, f"{width}x{height} is {'' if exact else 'about '}{factor:g} times the first pass's "
                  f"{latent.width}x{latent.height}: resized by {factor:g}{made}, so it follows the graph's width and "
                  "height")
    return factor


def vae_decode(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    latent = ev.typed(node, "samples", Latent)
    if media.is_media(latent):
        return media.decode(ev, node, latent)
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

def exposed(handler: Handler) -> Handler:
    """A sampler whose diffusion node also takes the IP-Adapters of its model as controls, its LoRA list as a graph
    input (``loras``; a different list on another pass gets ``loras_2``...), and, when it runs a further model (a
    refiner on ``model_2``...), its own ``steps_2``... so the base's steps can change without leaving the refiner no
    step to run."""

    def run(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
        latent = ev.value(node, "latent_image") if "latent_image" in node.inputs else None
        if isinstance(latent, Latent) and media.is_media(latent):
            return media.sample(ev, node, latent)
        outputs = handler(ev, node)
        for latent in {out.origin: out for out in outputs if isinstance(out, Latent) and out.origin}.values():
            inputs = ev.builder.nodes[latent.origin]["inputs"]
            _expose(ev.builder, inputs)
            if latent.model is not None and latent.model.controls:
                adapters = [{"from": f"{made}.control"} for made in latent.model.controls]
                inputs["controls"] = [*inputs.get("controls", []), *adapters]
        return outputs

    return run


def _expose(build: Builder, inputs: dict[str, Any]) -> None:
    if isinstance(inputs.get("loras"), list):
        inputs["loras"] = build.bind_file("loras", inputs["loras"], "json")
    model = inputs.get("model")
    suffix = model["input"].removeprefix("model") if isinstance(model, dict) else ""
    if suffix and inputs.get("steps") == {"input": "steps"}:
        inputs["steps"] = build.bind(f"steps{suffix}", build.inputs["steps"]["default"], "int")


def primitive(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (ev.value(node, "value"),)

HANDLERS: dict[str, Any] = {
    **loaders.HANDLERS, **images.HANDLERS, **adapters.HANDLERS, **media.HANDLERS,
    "EmptyLatentImage": empty_latent, "EmptySD3LatentImage": empty_latent, "VAEEncode": vae_encode,
    "VAEEncodeForInpaint": inpaint_encode, "SetLatentNoiseMask": noise_mask, "LatentUpscale": latent_upscale,
    "LatentUpscaleBy": latent_upscale, "VAEDecode": vae_decode, "VAEDecodeTiled": vae_decode,
    "KSampler": exposed(samplers.ksampler), "KSamplerAdvanced": exposed(samplers.ksampler_advanced),
    "SamplerCustomAdvanced": exposed(samplers.sampler_custom_advanced),
    "SamplerCustom": exposed(samplers.sampler_custom),
    "RandomNoise": samplers.random_noise, "BasicGuider": samplers.basic_guider, "CFGGuider": samplers.cfg_guider,
    "KSamplerSelect": samplers.sampler_select, "BasicScheduler": samplers.basic_scheduler,
    "KarrasScheduler": samplers.karras_scheduler, "SDTurboScheduler": schedule("sd_turbo"),
    "AlignYourStepsScheduler": schedule("ays"), "InpaintModelConditioning": inpaint_conditioning,
    "DifferentialDiffusion": differential_diffusion,
    "PrimitiveInt": primitive, "PrimitiveFloat": primitive, "PrimitiveString": primitive,
    "PrimitiveStringMultiline": primitive, "PrimitiveBoolean": primitive,
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
            unmapped[node.id] = Unmapped(node.id, node.class_type, unknown_reason(node.class_type), title=node.title)
    sinks = sorted((node for node in workflow.nodes.values() if node.class_type in SINKS), key=lambda n: _order(n.id))
    if not sinks and not unmapped:
        raise ImportFailed("the workflow has no node that saves or previews a picture, video or sound: nothing to "
                           "import")
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
