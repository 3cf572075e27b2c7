"""ComfyUI's samplers -> one nodeforge diffusion node each: ``image.generate`` from an empty latent,
``image.transform`` from an encoded image or an earlier pass (img2img, hires fix, the SDXL refiner),
``image.inpaint`` from a masked latent. KSampler, KSamplerAdvanced (start/end steps), SamplerCustom and Flux's
SamplerCustomAdvanced with its noise, guider, sampler and sigmas nodes all meet in ``sample``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodeforge.nodes.importers.comfy_values import Cond, Evaluator, Guider, Latent, Model, Named, Noise, Sigmas
from nodeforge.nodes.importers.comfy_workflow import ComfyNode, Link
from nodeforge.nodes.importers.samplers import comfy_sampling

MAX_STEPS, MAX_GUIDANCE, MAX_COUNT = 500, 50.0, 64


@dataclass
class Pass:
    """One sampling pass as the workflow states it."""

    model: Model
    positive: Cond
    negative: Cond | None
    latent: Latent
    seed: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str
    strength: float = 1.0


def ksampler(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (sample(ev, node, _pass(ev, node, seed=ev.integer(node, "seed"), strength=ev.number(node, "denoise", 1.0))),)


def ksampler_advanced(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    step = _pass(ev, node, seed=ev.integer(node, "noise_seed", 0))
    start = max(0, ev.integer(node, "start_at_step", 0))
    end = max(start, min(ev.integer(node, "end_at_step", 10000), step.steps))
    if step.latent.kind == "empty":
        if start > 0:
            ev.warn(node, f"starts at step {start} on an empty latent; nodeforge runs all {step.steps} steps")
    elif start >= step.steps:
        ev.warn(node, f"starts at step {start} of {step.steps}: no step is left, so it passes its latent on "
                      "unchanged (as ComfyUI does)")
        return (step.latent,)
    else:
        step.strength = (step.steps - start) / step.steps
    if end < step.steps:
        ev.warn(node, f"ends at step {end} of {step.steps} and hands its latent on; nodeforge finishes the "
                      "picture in this pass (all its steps) and the next pass re-draws it as img2img")
    return (sample(ev, node, step),)


def sampler_custom_advanced(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    noise = ev.typed(node, "noise", Noise)
    guider = ev.typed(node, "guider", Guider)
    chosen = ev.typed(node, "sampler", Named)
    sigmas = ev.typed(node, "sigmas", Sigmas)
    latent = ev.typed(node, "latent_image", Latent)
    step = Pass(guider.model, guider.positive, guider.negative, latent, noise.seed, sigmas.steps,
                guider.cfg if guider.cfg is not None else 1.0, chosen.name, sigmas.scheduler, sigmas.denoise)
    result = sample(ev, node, step)
    return (result, result)


def sampler_custom(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    chosen = ev.typed(node, "sampler", Named)
    sigmas = ev.typed(node, "sigmas", Sigmas)
    step = Pass(ev.typed(node, "model", Model), ev.typed(node, "positive", Cond), ev.optional(node, "negative", Cond),
                ev.typed(node, "latent_image", Latent), ev.integer(node, "noise_seed", 0), sigmas.steps,
                ev.number(node, "cfg", 8.0), chosen.name, sigmas.scheduler, sigmas.denoise)
    result = sample(ev, node, step)
    return (result, result)


def random_noise(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Noise(ev.integer(node, "noise_seed", 0)),)


def basic_guider(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Guider(ev.typed(node, "model", Model), ev.typed(node, "conditioning", Cond), None, None),)


def cfg_guider(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Guider(ev.typed(node, "model", Model), ev.typed(node, "positive", Cond),
                   ev.optional(node, "negative", Cond), ev.number(node, "cfg", 8.0)),)


def sampler_select(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Named("sampler", ev.text(node, "sampler_name", "euler")),)


def basic_scheduler(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    return (Sigmas(ev.text(node, "scheduler", "normal"), ev.integer(node, "steps", 20),
                   ev.number(node, "denoise", 1.0)),)


def karras_scheduler(ev: Evaluator, node: ComfyNode) -> tuple[Any, ...]:
    ev.warn(node, "sigma_max, sigma_min and rho are not carried over (the model's own range is used)")
    return (Sigmas("karras", ev.integer(node, "steps", 20), 1.0),)


def _pass(ev: Evaluator, node: ComfyNode, *, seed: int, strength: float = 1.0) -> Pass:
    return Pass(ev.typed(node, "model", Model), ev.typed(node, "positive", Cond), ev.optional(node, "negative", Cond),
                ev.typed(node, "latent_image", Latent), seed, ev.integer(node, "steps", 20),
                ev.number(node, "cfg", 8.0), ev.text(node, "sampler_name", "euler"),
                ev.text(node, "scheduler", "normal"), strength)


def sample(ev: Evaluator, node: ComfyNode, step: Pass) -> Latent:
    """The nodeforge diffusion node for one pass; the latent it yields points at its image."""
    build = ev.builder
    flow = step.model.flow or bool(step.positive.clip and step.positive.clip.flow)
    sampling, problem = comfy_sampling(step.sampler, step.scheduler, flow=flow, family=step.model.family or None,
                                       inpaint=step.latent.kind == "inpaint" and flow)
    if problem:
        ev.warn(node, problem)
    encoder = _find_upstream(ev, node, ("latent_image", "samples"), ("VAEEncodeForInpaint",))
    if encoder is not None and "sampler" in sampling:
        ev.warn(encoder, f"the picture is encoded as it is: VAEEncodeForInpaint's grey fill of the masked area (and "
                         f"its mask growth by {ev.integer(encoder, 'grow_mask_by', 6)} pixels) is not reproduced, "
                         "so the repainted area differs from ComfyUI's")
    guidance = step.positive.guidance if step.positive.guidance is not None else step.cfg
    if guidance > MAX_GUIDANCE:
        ev.warn(node, f"cfg {guidance} is above nodeforge's limit; using {MAX_GUIDANCE}")
        guidance = MAX_GUIDANCE
    steps = step.steps
    if steps > MAX_STEPS:
        ev.warn(node, f"{steps} steps is above nodeforge's limit; using {MAX_STEPS}")
        steps = MAX_STEPS
    inputs: dict[str, Any] = {"prompt": build.bind("prompt", step.positive.text, "text")}
    negative = step.negative.text if step.negative is not None else ""
    if negative:
        inputs["negative_prompt"] = build.bind("negative_prompt", negative, "text")
    inputs.update({"model": build.bind_model(step.model.name), "steps": build.bind("steps", steps, "int"),
                   "guidance_scale": round(float(guidance), 4), "seed": build.bind("seed", step.seed, "int"),
                   **sampling})
    inputs.update(_upstream_settings(ev, node, "sampler" in sampling))
    if step.model.loras:
        inputs["loras"] = [{"model": lora.name, "weight": lora.weight} for lora in step.model.loras]
    controls = dict.fromkeys([*step.positive.controls, *(step.negative.controls if step.negative else ())])
    if controls:
        inputs["controls"] = [{"from": f"{control}.control"} for control in controls]
    latent = step.latent
    strength = round(min(max(step.strength, 0.0), 1.0), 4)
    if latent.kind == "empty":
        if strength < 1.0:
            ev.warn(node, f"denoise {strength} on an empty latent: nodeforge draws the picture fully")
        inputs["width"] = build.bind("width", latent.width, "int")
        inputs["height"] = build.bind("height", latent.height, "int")
        if latent.batch > 1:
            inputs["count"] = min(latent.batch, MAX_COUNT)
        kind, type_id = "generate", "image.generate"
    else:
        if strength <= 0.0:
            raise ev.fail(node, "denoise 0 changes nothing: no denoising step would run")
        inputs.update({"image": {"from": latent.image}, "strength": strength})
        if latent.kind == "inpaint":
            inputs["mask"] = {"from": latent.mask}
            kind, type_id = "inpaint", "image.inpaint"
        else:
            kind, type_id = "transform", "image.transform"
    node_id = build.add(kind, node.id, type_id, inputs, node.pos)
    return Latent("sampled", latent.width, latent.height, latent.batch, image=f"{node_id}.image", origin=node_id,
                  model=step.model, clip=step.positive.clip)


def _upstream_settings(ev: Evaluator, node: ComfyNode, comfy_sampler: bool) -> dict[str, Any]:
    """Settings that nodes upstream of a sampler give it: the sigma shift of ModelSamplingFlux/ModelSamplingSD3
    (``flow_shift``, with a ComfyUI sampler) and CLIPSetLastLayer's layer on the prompt's text encoder
    (``clip_layer``)."""
    settings: dict[str, Any] = {}
    shifter = _find_upstream(ev, node, ("model", "guider"), ("ModelSamplingFlux", "ModelSamplingSD3"))
    if shifter is not None and not comfy_sampler:
        ev.warn(shifter, "its sigma shift is not carried over: the sampler it feeds is not reproduced")
    elif shifter is not None:
        if shifter.class_type == "ModelSamplingSD3":
            settings["flow_shift"] = round(ev.number(shifter, "shift", 3.0), 6)
        else:
            low, high = ev.number(shifter, "base_shift", 0.5), ev.number(shifter, "max_shift", 1.15)
            slope = (high - low) / (4096 - 256)
            pixels = ev.number(shifter, "width", 1024) * ev.number(shifter, "height", 1024)
            settings["flow_shift"] = round(pixels / (8 * 8 * 2 * 2) * slope + (low - slope * 256), 6)
    layer = _find_upstream(ev, node, ("positive", "conditioning", "guider", "clip"), ("CLIPSetLastLayer",))
    if layer is not None and ev.integer(layer, "stop_at_clip_layer", -1) != -1:
        settings["clip_layer"] = max(-24, min(-1, ev.integer(layer, "stop_at_clip_layer", -1)))
    return settings


def _find_upstream(ev: Evaluator, node: ComfyNode, through: tuple[str, ...],
                   wanted: tuple[str, ...]) -> ComfyNode | None:
    """The nearest node of a ``wanted`` class reached from ``node`` by following only the inputs named in
    ``through`` (a model passes through LoRA loaders and patches on its ``model`` input, a prompt through its
    encoder's ``clip``)."""
    seen: set[str] = set()
    frontier = [node]
    while frontier:
        current = frontier.pop(0)
        for name in through:
            link = current.inputs.get(name)
            if not (isinstance(link, Link) and link.node in ev.workflow.nodes):
                continue
            source = ev.workflow.nodes[link.node]
            if source.id in seen:
                continue
            seen.add(source.id)
            if source.class_type in wanted:
                return source
            frontier.append(source)
    return None
