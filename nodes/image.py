"""Text-to-image and image-to-image with diffusers pipelines (SD 1.x/2.x, SDXL, SD3, Flux), LoRAs, schedulers and
controls (ControlNets, IP-Adapters).

The model is loaded once per device through ``ctx.models`` as a ``diffusion`` model; ``image.transform`` and
``image.inpaint`` ask for the same one and build their pipelines from the loaded components (``from_pipe``), so a
graph that generates, refines and repaints an image loads the weights once. ``sample`` is the one way every
diffusion node calls a pipeline: the lock, LoRAs, ControlNets and IP-Adapters for the run, and the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import ModelInput, SeedInput, TextInput
from nodeforge.engine.errors import NodeError
from nodeforge.engine.model_source import ModelSource, ResolvedModel
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs, Upstream
from nodeforge.engine.values import Control, Image
from nodeforge.nodes.family_helpers import torch_device
from nodeforge.nodes.models.checkpoints.assemble import find_config
from nodeforge.nodes.models.diffusion.comfy_run import ComfySampling, comfy_sampling
from nodeforge.nodes.models.diffusion.controls import (
    CONTROLS,
    control_problems,
    linked_control_problems,
    load_controlnets,
)
from nodeforge.nodes.models.diffusion.ip_adapter import applied_ip_adapters
from nodeforge.nodes.models.diffusion.ksampling.sampler_table import SAMPLER_NAMES, sampler_problem
from nodeforge.nodes.models.diffusion.ksampling.schedules import SCHEDULE_NAMES
from nodeforge.nodes.models.diffusion.memory import for_call, memory_record, picture_batch, plan_decode
from nodeforge.nodes.models.diffusion.pipelines import (
    DIFFUSION,
    FAMILIES,
    FLOW_FAMILIES,
    LORA,
    SCHEDULERS,
    DiffusionModel,
    applied_loras,
    load_pipeline,
    lora_problems,
    pipeline_family,
    pipeline_for_run,
    scheduler_problem,
    size_problem,
)
from nodeforge.nodes.models.diffusion.prompt_encoding import (
    EMBEDDING,
    NotReproduced,
    embedding_files,
    prompt_kwargs,
)
from nodeforge.nodes.models.diffusion.steps import cancellable, step_callback
from nodeforge.nodes.models.diffusion.vae import VAE, override_vae

PROMPT_SYNTAXES = ("comfy", "a1111", "a1111_no_norm")
MODEL_HELP = ("tiny/sd, tiny/sdxl, tiny/sd3, tiny/flux (noise, for tests), an alias such as sd-turbo, sdxl-turbo or "
              "flux-schnell, a Hub id, or a local diffusers folder or .safetensors checkpoint")


class DiffusionInputs(NodeInputs):
    """Inputs shared by text-to-image and image-to-image."""

    prompt: str = TextInput(description="What to draw")
    negative_prompt: str = Field("", description="What to avoid (used when guidance_scale > 1)")
    model: str = ModelInput("sd-turbo", kind=DIFFUSION, description=MODEL_HELP)
    steps: int = Field(4, ge=1, le=500, description="Denoising steps")
    guidance_scale: float = Field(0.0, ge=0.0, le=50.0,
                                  description="Classifier-free guidance; 1 or less turns it off (turbo models: 0)")
    seed: int = SeedInput(0, description="Noise seed; -1 draws one (recorded in the run)")
    scheduler: str = Field("default", description="default (the model's own), or one of: " + ", ".join(SCHEDULERS[1:]),
                           json_schema_extra={"enum": list(SCHEDULERS)})
    sampler: str = Field("", description="A ComfyUI sampler (euler, euler_ancestral, dpmpp_2m, dpmpp_2m_sde, ...): "
                                         "the same picture as ComfyUI for the seed; empty: use scheduler",
                         json_schema_extra={"enum": ["", *SAMPLER_NAMES]})
    sigma_schedule: str = Field("normal", description="ComfyUI's scheduler for sampler: " + ", ".join(SCHEDULE_NAMES),
                                json_schema_extra={"enum": list(SCHEDULE_NAMES)})
    prompt_syntax: str = Field("comfy", description="How weights in the prompt read: comfy ((word:1.2), (word) = "
                                                   "x1.1, embedding:name), a1111 (also [word] = /1.1 and BREAK, "
                                                   "weights normalised to the mean), a1111_no_norm",
                               json_schema_extra={"enum": list(PROMPT_SYNTAXES)})
    flow_shift: float = Field(0.0, ge=0.0, le=100.0, description="Flux/SD3 with a ComfyUI sampler: the sigma shift "
                                                                 "(ModelSamplingFlux/SD3); 0: the model's default")
    clip_layer: int = Field(0, ge=-24, le=0, description="ComfyUI's CLIP Set Last Layer: -1 the text encoder's last "
                                                         "layer, -2 the one before (A1111's clip skip 2); 0: the "
                                                         "model's default")
    loras: list[dict[str, Any]] = ModelInput([], kind=LORA, widget="loras",
                                             description='LoRAs for this run: [{"model": file, folder or Hub id, '
                                                         '"weight": 1.0}], diffusers or kohya format')
    controls: list[Control] = ModelInput([], kind=CONTROLS,
                                         description="ControlNets and IP-Adapters (image.controlnet, "
                                                     "image.ip_adapter), several at once, each with its own weight "
                                                     "and step range")
    vae: str = ModelInput("", kind=VAE, description="A VAE file or folder to decode with instead of the model's own "
                                                    "(e.g. SDXL's fp16 fix); empty: the model's own")


class ImageOutput(NodeOutputs):
    image: Image


def check_diffusion(literals: Mapping[str, Any], models: ModelSource) -> list[tuple[str | None, str]]:
    """Static checks both nodes share: scheduler name (for the model's family when known), LoRA list, controls
    (the model names themselves are checked from their declarations)."""
    issues: list[tuple[str | None, str]] = []
    model = literals.get("model")
    family = models.family_of(model) if isinstance(model, str) else None
    scheduler = literals.get("scheduler")
    if isinstance(scheduler, str):
        problem = scheduler_problem(scheduler, family if family in FAMILIES else None)
        if problem:
            issues.append(("scheduler", problem))
    issues.extend(sampling_problems(literals, family))
    if "loras" in literals and literals["loras"] is not None:
        issues.extend(("loras", problem) for problem in lora_problems(literals["loras"]))
    if isinstance(model, str):
        issues.extend(("controls", problem) for problem in control_problems(literals.get("controls"), family, model))
    return issues


def sampling_problems(literals: Mapping[str, Any], family: str | None) -> list[tuple[str | None, str]]:
    """A ComfyUI sampler and schedule by name, not together with a diffusers scheduler; Align Your Steps has levels
    for SD 1.x and SDXL only."""
    issues: list[tuple[str | None, str]] = []
    sampler, schedule = literals.get("sampler"), literals.get("sigma_schedule")
    if isinstance(sampler, str) and sampler:
        problem = sampler_problem(sampler)
        if problem:
            issues.append(("sampler", problem))
        if literals.get("scheduler", "default") not in ("default", None):
            issues.append(("scheduler", f"scheduler '{literals['scheduler']}' and sampler '{sampler}' both choose how "
                                        "to sample; keep scheduler 'default' when a ComfyUI sampler is set"))
    shift = literals.get("flow_shift")
    if isinstance(shift, int | float) and shift:
        if family in ("sd", "sdxl"):
            issues.append(("flow_shift", f"flow_shift applies to Flux and SD3 models, not {family}"))
        elif not sampler:
            issues.append(("flow_shift", "flow_shift is used with a ComfyUI sampler; set sampler too"))
    if isinstance(schedule, str):
        if schedule not in SCHEDULE_NAMES:
            issues.append(("sigma_schedule", f"unknown sigma_schedule '{schedule}'; accepted: "
                                             f"{', '.join(SCHEDULE_NAMES)}"))
        elif schedule == "ays" and family not in (None, "sd", "sdxl"):
            issues.append(("sigma_schedule", f"Align Your Steps (ays) has noise levels for SD 1.x and SDXL models, "
                                             f"not {family}"))
    return issues


def diffusion_model(ctx: NodeContext, name: str) -> DiffusionModel:
    def build(resolved: ResolvedModel, device: str) -> DiffusionModel:
        memory = ctx.models.memory  # the device's --memory-mode and budget, when the model loads
        return load_pipeline(resolved, pipeline_family(name, resolved), device, find_config(ctx), memory=memory)

    return ctx.models.load(name, build)


def drawing_model(ctx: NodeContext, name: str) -> DiffusionModel:
    """The model for generate and transform, which draw the whole picture: an inpainting checkpoint only repaints
    (its denoiser also takes the masked picture and mask), so it is an error naming image.inpaint."""
    model = diffusion_model(ctx, name)
    if model.inpainting_only:
        raise NodeError(f"model '{name}' is an inpainting model (its denoiser takes the masked picture and mask as "
                        "extra channels): it repaints through image.inpaint, not whole pictures", input="model")
    return model


def sample(model: DiffusionModel, inputs: DiffusionInputs, ctx: NodeContext, *, task: str,
           size: tuple[int, int], **call: Any) -> Image:
    """Run the model's pipeline for ``task`` (text, image, inpaint) at ``size`` (height, width) with the node's
    LoRAs and controls applied for this run only; ``call`` holds the task's own arguments (prompt, image, mask)."""
    problems = control_problems(inputs.controls, model.family, inputs.model)
    if problems:
        raise NodeError(problems[0], input="controls")
    controlnets = load_controlnets(ctx, inputs.controls, model.family, model.dtype, size)
    adapters = [control for control in inputs.controls if control.kind == "ip_adapter"]
    vae = override_vae(ctx, model, inputs.vae)
    comfy = _comfy_sampling(model, inputs, task, size, call)
    with model.lock, applied_loras(model, inputs.loras, ctx), \
            pipeline_for_run(model, inputs.scheduler, task="image" if comfy and task == "inpaint" else task,
                             controlnets=controlnets, vae=vae, sampler=comfy.scheduler if comfy else None) as pipe, \
            applied_ip_adapters(model, pipe, adapters, ctx) as adapter_kwargs:
        kwargs = _common_kwargs(model, inputs, ctx, size)
        call = _encode_prompts(model, pipe, inputs, ctx, call, kwargs)
        if isinstance(call.get("prompt"), list) and "negative_prompt" in kwargs:  # one per prompt, as diffusers asks
            kwargs["negative_prompt"] = [kwargs["negative_prompt"]] * len(call["prompt"])
        if controlnets is not None:
            kwargs.update(controlnets.call_kwargs(pipe))
        decode = plan_decode(pipe.vae, ctx.models.memory, size[1], size[0], picture_batch(call))
        ctx.record_detail("memory", memory_record(model.memory, decode))
        with for_call(model.pipe, pipe, model.memory, decode), cancellable(ctx, pipe):  # VAE modes; stops inside a step
            arguments = comfy.call_arguments(pipe, call) if comfy else call
            result = pipe(**arguments, **kwargs, **adapter_kwargs)
    return _images(result)


def _encode_prompts(model: DiffusionModel, pipe: Any, inputs: DiffusionInputs, ctx: NodeContext,
                    call: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The prompts encoded as ComfyUI encodes them (weights, long prompts, ``embedding:`` files, ``clip_layer``):
    the call without ``prompt`` and ``kwargs`` with the embeddings instead of ``negative_prompt``. SD3 and Flux
    prompts in plain text are left to the pipeline; with weights they go in as written, with a warning."""
    files = embedding_files(lambda name: ctx.models.resolve(name, input="prompt", kind=EMBEDDING).path)
    guidance = inputs.guidance_scale > 1.0 and model.family != "flux"
    try:
        encoded = prompt_kwargs(pipe, model.family, call["prompt"], inputs.negative_prompt, guidance=guidance,
                                embeddings=files, clip_layer=inputs.clip_layer or None,
                                syntax="comfy" if inputs.prompt_syntax == "comfy" else "a1111",
                                normalize=inputs.prompt_syntax != "a1111_no_norm")
    except NotReproduced as exc:
        ctx.warn(str(exc))
        return call
    if encoded is None:
        return call
    kwargs.pop("negative_prompt", None)
    kwargs.update(encoded)
    return {key: value for key, value in call.items() if key != "prompt"}


def _comfy_sampling(model: DiffusionModel, inputs: DiffusionInputs, task: str, size: tuple[int, int],
                    call: Mapping[str, Any]) -> ComfySampling | None:
    """The run's ComfyUI sampler when the node names one (checked again here: the names may have been linked)."""
    if not inputs.sampler:
        return None
    for name, problem in sampling_problems(inputs.model_dump(include={"sampler", "sigma_schedule", "scheduler"}),
                                           model.family):
        raise NodeError(problem, input=name)
    if task == "inpaint" and model.family == "flux":
        raise NodeError("Flux inpainting with a ComfyUI sampler is not reproduced (its latents are packed); leave "
                        "sampler empty", input="sampler")
    if task == "inpaint" and model.inpainting_only:
        raise NodeError(f"model '{inputs.model}' is an inpainting model (its denoiser takes the masked picture as "
                        "extra channels), which ComfyUI's samplers are not reproduced for; leave sampler empty and "
                        "choose a scheduler", input="sampler")
    prompts = call.get("prompt")
    pictures = (len(prompts) if isinstance(prompts, list) else 1) * int(call.get("num_images_per_prompt", 1) or 1)
    return comfy_sampling(model, sampler=inputs.sampler, schedule=inputs.sigma_schedule, steps=inputs.steps,
                          seed=inputs.seed, task=task, size=size, count=pictures,
                          denoise=float(getattr(inputs, "strength", 1.0)), shift=inputs.flow_shift or None)


def _common_kwargs(model: DiffusionModel, inputs: DiffusionInputs, ctx: NodeContext,
                   size: tuple[int, int]) -> dict[str, Any]:
    """Call arguments every family takes, plus per-step progress and previews and the seeded generator."""
    import torch

    on_step = step_callback(ctx, model.family, inputs.steps, model=inputs.model, height=size[0], width=size[1])
    kwargs: dict[str, Any] = {
        "num_inference_steps": inputs.steps, "guidance_scale": inputs.guidance_scale,
        "generator": torch.Generator("cpu").manual_seed(inputs.seed), "output_type": "pt",
        "callback_on_step_end": on_step}
    if model.family in FLOW_FAMILIES:
        t5 = model.pipe.tokenizer_2 if model.family == "flux" else model.pipe.tokenizer_3
        longest = 512 if model.family == "flux" else 256
        kwargs["max_sequence_length"] = min(longest, int(getattr(t5, "model_max_length", longest) or longest))
    if inputs.negative_prompt:
        if model.family == "flux":
            ctx.warn("negative_prompt is not used: Flux models are guidance-distilled")
        elif inputs.guidance_scale <= 1.0:
            ctx.warn(f"negative_prompt has no effect with guidance_scale {inputs.guidance_scale} (needs > 1)")
        else:
            kwargs["negative_prompt"] = inputs.negative_prompt
    return kwargs


def size_multiple(model: DiffusionModel) -> int:
    """Pixel sizes the model's latents need: the VAE's factor, times the transformer's patch for SD3 and the 2x2
    packing of Flux."""
    factor = int(getattr(model.pipe, "vae_scale_factor", 8))
    if model.family == "flux":
        return factor * 2
    if model.family == "sd3":
        return factor * int(model.pipe.transformer.config.patch_size)
    return factor


def _images(result: Any) -> Image:
    return Image(result.images.float().clamp(0, 1))


class DiffusionNode(Node):
    """What every diffusion node shares: its model, LoRA and control inputs name models, it runs on a device, and
    the controls linked into it must fit its model's family."""

    accelerator = True

    def check_upstream(self, literals: Mapping[str, Any], upstream: Mapping[str, list[Upstream]],
                       models: ModelSource) -> list[tuple[str | None, str]]:
        linked = [(node.type, node.literals.get("model")) for node in upstream.get("controls", [])]
        return [("controls", problem) for problem in linked_control_problems(literals.get("model"), linked, models)]


class Generate(DiffusionNode):
    """Text to image with a diffusion model (SD 1.x/2.x, SDXL, SD3, Flux): prompt, size, steps, guidance, seed,
    scheduler, a batch of ``count`` images and optional LoRAs. Reports progress per denoising step.
    ``openai:<model>`` asks an OpenAI-compatible images API instead (``nodes/openai_media_backend.py``)."""

    type_id = "image.generate"
    version = "1.3.0"

    class Inputs(DiffusionInputs):
        model: str = ModelInput("sd-turbo", kind=replace(DIFFUSION, remote=True),
                                description=MODEL_HELP + ", or openai:<model> (an OpenAI-compatible images API)")
        width: int = Field(512, ge=8, le=8192, description="Pixels; a multiple of 8")
        height: int = Field(512, ge=8, le=8192, description="Pixels; a multiple of 8")
        count: int = Field(1, ge=1, le=64, description="Images in the batch (one seed: image i differs by batch)")

    Outputs = ImageOutput

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        if isinstance(literals.get("model"), str) and models.remote_name(literals["model"]) is not None:
            from nodeforge.nodes.openai_media_backend import image_problems

            return image_problems(literals)  # the server decides which sizes it draws
        issues = check_diffusion(literals, models)
        for name in ("width", "height"):
            problem = size_problem(name, literals.get(name))
            if problem:
                issues.append((name, problem))
        return issues

    def run(self, inputs: Inputs, ctx: NodeContext) -> ImageOutput:
        if ctx.models.remote(inputs.model) is not None:
            from nodeforge.nodes.openai_media_backend import remote_generate

            return ImageOutput(image=remote_generate(inputs, ctx))
        model = drawing_model(ctx, inputs.model)
        multiple = size_multiple(model)
        for name in ("width", "height"):
            if getattr(inputs, name) % multiple:
                raise NodeError(f"{name} {getattr(inputs, name)} is not a multiple of {multiple}, which "
                                f"{model.family} models need", input=name)
        return ImageOutput(image=sample(model, inputs, ctx, task="text", size=(inputs.height, inputs.width),
                                        prompt=inputs.prompt, width=inputs.width, height=inputs.height,
                                        num_images_per_prompt=inputs.count))


class Transform(DiffusionNode):
    """Image to image: re-draw an image guided by a prompt; ``strength`` 0..1 is how far it may move from the
    input (steps x strength denoising steps run). Uses the same loaded model as ``image.generate``."""

    type_id = "image.transform"
    version = "1.3.0"

    class Inputs(DiffusionInputs):
        image: Image = Field(description="The image to start from (its size is kept)")
        strength: float = Field(0.6, gt=0.0, le=1.0, description="0: keep the input, 1: ignore it")
        count: int = Field(1, ge=1, le=64, description="Images per input image")

    Outputs = ImageOutput

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        issues = check_diffusion(literals, models)
        steps, strength = literals.get("steps"), literals.get("strength")
        if isinstance(steps, int) and isinstance(strength, int | float) and int(steps * strength) < 1:
            issues.append(("strength", f"steps x strength = {steps} x {strength} runs no denoising step; raise "
                                       "steps or strength"))
        return issues

    def run(self, inputs: Inputs, ctx: NodeContext) -> ImageOutput:
        model = drawing_model(ctx, inputs.model)
        pixels = fit_pixels(inputs.image, size_multiple(model), model, ctx)
        height, width = int(pixels.shape[2]), int(pixels.shape[3])
        sizes = {"height": height, "width": width} if model.family == "flux" or inputs.controls else {}
        return ImageOutput(image=sample(model, inputs, ctx, task="image", size=(height, width),
                                        prompt=[inputs.prompt] * int(pixels.shape[0]), image=pixels,
                                        strength=inputs.strength, num_images_per_prompt=inputs.count, **sizes))


def fit_pixels(image: Image, multiple: int, model: DiffusionModel, ctx: NodeContext) -> Any:
    """RGB pixels on the model's device, resized down to the nearest size the model accepts (with a warning)."""
    from torch.nn import functional as F  # noqa: N812

    pixels = image.tensor.float()
    if pixels.shape[1] == 4:
        pixels = pixels[:, :3]
    elif pixels.shape[1] == 1:
        pixels = pixels.repeat(1, 3, 1, 1)
    height, width = image.height, image.width
    fit_h, fit_w = max(multiple, height // multiple * multiple), max(multiple, width // multiple * multiple)
    if (fit_h, fit_w) != (height, width):
        ctx.warn(f"image resized from {width}x{height} to {fit_w}x{fit_h}: {model.family} models need "
                 f"multiples of {multiple}")
        pixels = F.interpolate(pixels, size=(fit_h, fit_w), mode="bicubic", antialias=True).clamp(0, 1)
    return pixels.to(torch_device(ctx.device))
