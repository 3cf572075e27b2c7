"""Diffusion pipelines for the image nodes: family detection, loading, schedulers by name, and LoRAs.

One text-to-image pipeline per model is loaded and kept by the model manager (``DiffusionModel``); image-to-image
reuses its components through ``from_pipe``. Runs on one model take turns (its lock): a scheduler chosen by name is
swapped in for the run and put back, and LoRAs are applied for one run and removed after it, so the next node sees
the base model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ResolvedModel, model_key
from nodeforge.nodes.family_helpers import quiet_transformers
from nodeforge.nodes.models.checkpoints.assemble import FindConfig, load_from_files, model_files
from nodeforge.nodes.models.diffusion.controls import CONTROLNET_PIPELINES, ControlNets
from nodeforge.nodes.models.diffusion.memory import MemoryPlan, PlacedPipeline, place_pipeline

if TYPE_CHECKING:
    from nodeforge.engine.context import NodeContext
    from nodeforge.engine.memory_modes import DeviceMemory

FAMILIES = ("sd", "sdxl", "flux", "sd3")
FLOW_FAMILIES = ("flux", "sd3")
DIFFUSION = ModelKind("diffusion", FAMILIES)
"""A diffusion pipeline's components, loaded once per device and shared by every diffusion node."""
LORA = ModelKind("lora")
"""A LoRA file or folder, applied to a loaded pipeline for one run."""

TEXT_TO_IMAGE = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline", "flux": "FluxPipeline",
                 "sd3": "StableDiffusion3Pipeline"}
IMAGE_TO_IMAGE = {"sd": "StableDiffusionImg2ImgPipeline", "sdxl": "StableDiffusionXLImg2ImgPipeline",
                  "flux": "FluxImg2ImgPipeline", "sd3": "StableDiffusion3Img2ImgPipeline"}
INPAINT = {"sd": "StableDiffusionInpaintPipeline", "sdxl": "StableDiffusionXLInpaintPipeline",
           "flux": "FluxInpaintPipeline", "sd3": "StableDiffusion3InpaintPipeline"}
PLAIN_PIPELINES = {"text": TEXT_TO_IMAGE, "image": IMAGE_TO_IMAGE, "inpaint": INPAINT}

# Scheduler names -> (diffusers class, config overrides). Noise-prediction models (SD 1.x/2.x, SDXL) take the
# first table; flow-matching models (Flux, SD3) the second. "default" keeps the model's own scheduler.
NOISE_SCHEDULERS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpm2": ("KDPM2DiscreteScheduler", {}),
    "dpm2_a": ("KDPM2AncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                        "use_karras_sigmas": True}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde_karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2,
                                                            "use_karras_sigmas": True}),
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "deis": ("DEISMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
    "tcd": ("TCDScheduler", {}),
}
FLOW_SCHEDULERS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "lcm": ("FlowMatchLCMScheduler", {}),
}
SCHEDULERS = ("default", *dict.fromkeys([*NOISE_SCHEDULERS, *FLOW_SCHEDULERS]))


def schedulers_for(family: str) -> Mapping[str, tuple[str, Mapping[str, Any]]]:
    return FLOW_SCHEDULERS if family in FLOW_FAMILIES else NOISE_SCHEDULERS


def scheduler_problem(name: str, family: str | None = None) -> str | None:
    """Why a scheduler name cannot be used (for this family, when known); None when it can."""
    if name not in SCHEDULERS:
        return f"unknown scheduler '{name}'; accepted: {', '.join(SCHEDULERS)}"
    if family is not None and name != "default" and name not in schedulers_for(family):
        accepted = ", ".join(("default", *schedulers_for(family)))
        return f"scheduler '{name}' does not work with {family} models; accepted for {family}: {accepted}"
    return None


def size_problem(name: str, value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and (value <= 0 or value % 8):
        return f"{name} {value} is not a positive multiple of 8 (e.g. {max(8, (value // 8) * 8)} or " \
               f"{max(8, (value // 8 + 1) * 8)})"
    return None


def lora_problems(loras: Any) -> list[str]:
    """Shape problems of a ``loras`` literal: a list of ``{"model": str, "weight": number}``."""
    if not isinstance(loras, list):
        return ['loras is a list of {"model": name or path, "weight": number}']
    problems = []
    for i, item in enumerate(loras):
        if not isinstance(item, dict) or not isinstance(item.get("model"), str) or not item["model"].strip():
            problems.append(f'loras[{i}] needs "model": a LoRA file, folder or Hub id')
            continue
        extra = set(item) - {"model", "weight"}
        if extra:
            problems.append(f"loras[{i}] has unknown key(s) {', '.join(sorted(extra))}; accepted: model, weight")
        weight = item.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            problems.append(f"loras[{i}].weight must be a number, not {weight!r}")
    return problems


@dataclass
class DiffusionModel(PlacedPipeline):
    """A loaded text-to-image pipeline as the model manager holds it. ``lock`` serialises runs on it: LoRAs,
    IP-Adapters, ControlNets and scheduler swaps change shared modules for the length of one run."""

    pipe: Any
    family: str
    name: str
    key: str = ""  # the model manager's identity, to drop a pipeline that cannot be put back
    config: Path | None = None  # the diffusers configuration folder the pipeline was built with
    memory: MemoryPlan | None = None  # how it sits on its device (--memory-mode, nodes.models.diffusion.memory)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._variants: dict[str, Any] = {}

    def variant(self, cls_name: str, **components: Any) -> Any:
        """The pipeline ``cls_name`` over the same modules (``from_pipe``: nothing is loaded twice), made once;
        ``components`` are the modules it adds (a ControlNet), set again on every call."""
        if cls_name == type(self.pipe).__name__:
            return self.pipe
        pipe = self._variants.get(cls_name)
        if pipe is None:
            import diffusers

            pipe = getattr(diffusers, cls_name).from_pipe(self.pipe, **components)
            pipe.set_progress_bar_config(disable=True)
            self._variants[cls_name] = pipe
        for name, module in components.items():
            setattr(pipe, name, module)
        return pipe

    @property
    def inpainting_only(self) -> bool:
        """Whether the denoiser takes the masked picture and mask as extra input channels (SD/SDXL inpainting
        checkpoints' 9-channel UNets, Flux Fill): such a model only repaints, through image.inpaint."""
        unet = getattr(self.pipe, "unet", None)
        if unet is not None:
            return int(unet.config.in_channels) != int(self.pipe.vae.config.latent_channels)
        return self.fills

    @property
    def fills(self) -> bool:
        """Whether this is a Flux Fill model (its transformer takes the masked image and mask as extra channels)."""
        return self.family == "flux" and int(self.pipe.transformer.config.in_channels) > 64

    @property
    def components(self) -> dict[str, Any]:
        return dict(self.pipe.components)

    def to(self, device: str) -> DiffusionModel:
        self.move_pipe(device)
        return self

    @property
    def device(self) -> Any:
        return self.pipe.device

    @property
    def dtype(self) -> Any:
        return self.pipe.dtype


def family_of_folder(folder: Path) -> str | None:
    """The family of a diffusers folder, from ``model_index.json``'s pipeline class; None when unknown."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cls = str(index.get("_class_name", ""))
    for prefix, family in (("StableDiffusionXL", "sdxl"), ("StableDiffusion3", "sd3"), ("Flux", "flux"),
                           ("StableDiffusion", "sd"), ("LatentConsistencyModel", "sd")):
        if cls.startswith(prefix):
            return family
    return None


def family_of_files(resolved: ResolvedModel) -> str | None:
    """The family of a single-file checkpoint or a model made of component files, from the tensor names."""
    from nodeforge.nodes.models.checkpoints.inspection import inspect_checkpoint

    try:
        return inspect_checkpoint(resolved.path).family
    except NodeError:
        return None


def pipeline_family(name: str, resolved: ResolvedModel) -> str:
    """The model's family; NodeError on ``model`` when it is not a diffusion pipeline this node runs."""
    family = resolved.family
    if family is None:
        family = family_of_files(resolved) if resolved.path.is_file() else family_of_folder(resolved.path)
    if family not in FAMILIES:
        raise NodeError(f"model '{name}' ({resolved.path}) is not a diffusion pipeline this node can run; accepted: "
                        "a diffusers folder or single .safetensors checkpoint of SD 1.x/2.x, SDXL, SD3 or Flux",
                        input="model")
    return family


def pipeline_dtype(family: str, device: str) -> Any:
    """fp16 on GPUs (bf16 for Flux, which overflows in fp16), fp32 on the CPU."""
    import torch

    if device.startswith(("cuda", "mps")):
        return torch.bfloat16 if family == "flux" else torch.float16
    return torch.float32


def load_pipeline(resolved: ResolvedModel, family: str, device: str, find_config: FindConfig,
                  memory: DeviceMemory | None = None) -> DiffusionModel:
    """Load the text-to-image pipeline of a model onto ``device`` (fp16/bf16 on GPUs, fp32 on the CPU): a diffusers
    folder as it is; a single-file checkpoint or component files offline, with a bundled configuration
    (``find_config`` resolves ``config/<architecture>`` and tiny names to folders)."""
    import diffusers

    cls = getattr(diffusers, TEXT_TO_IMAGE[family])
    dtype = pipeline_dtype(family, device)
    extra: dict[str, Any] = {}
    if family == "sd":
        extra.update(safety_checker=None, requires_safety_checker=False)
    quiet_loading()
    files = model_files(resolved)
    if files.single_file or files.parts or files.settings:
        pipe, config = load_from_files(cls, files, family, dtype, find_config, extra)
    else:
        config = resolved.path
        try:
            pipe = cls.from_pretrained(str(resolved.path), dtype=dtype, **extra)
        except Exception as exc:  # noqa: BLE001 - a load failure of any kind becomes one message naming the model
            raise NodeError(f"model '{resolved.name}' could not be loaded as a {family} pipeline from "
                            f"{resolved.path}: {type(exc).__name__}: {first_line(exc)}", input="model") from None
    pipe.set_progress_bar_config(disable=True)
    placed = place_pipeline(pipe, device, memory)  # whole, offloaded or layer by layer: --memory-mode
    return DiffusionModel(pipe, family, resolved.name, model_key(DIFFUSION.name, resolved), config, memory=placed)


def make_scheduler(model: DiffusionModel, name: str) -> Any:
    """A scheduler ``name`` built from the model's scheduler config; None for "default" (keep the model's own)."""
    import diffusers

    if name == "default":
        return None
    problem = scheduler_problem(name, model.family)
    if problem is not None:
        raise NodeError(problem, input="scheduler")
    cls_name, overrides = schedulers_for(model.family)[name]
    return getattr(diffusers, cls_name).from_config(model.pipe.scheduler.config, **overrides)


def pipeline_class(model: DiffusionModel, task: str, controlnets: ControlNets | None) -> str:
    """The diffusers pipeline for a task (``text``, ``image`` or ``inpaint``) on this model, with ControlNets or
    without; NodeError on ``controls`` when diffusers has no such pipeline for the family."""
    if controlnets is None:
        if task == "inpaint" and model.fills:
            return "FluxFillPipeline"
        return PLAIN_PIPELINES[task][model.family]
    if task == "inpaint" and model.fills:
        raise NodeError("Flux Fill models take no ControlNets in diffusers; use an ordinary Flux model with a "
                        "ControlNet, or Flux Fill without one", input="controls")
    name = CONTROLNET_PIPELINES.get((controlnets.pipeline_key(model.family), task))
    if name is None:
        raise NodeError(f"diffusers has no {model.family} ControlNet pipeline for {task} to image; use "
                        "image.generate or image.inpaint with this model", input="controls")
    return name


@contextmanager
def pipeline_for_run(model: DiffusionModel, scheduler: str, *, task: str = "text",
                     controlnets: ControlNets | None = None, vae: Any = None, sampler: Any = None) -> Iterator[Any]:
    """The pipeline to call for one run, with the requested scheduler (or ``sampler``, a scheduler object made
    for this run: ComfyUI's samplers) and VAE, when one replaces the model's, swapped in and put back afterwards.
    Hold ``model.lock`` around it: schedulers keep per-run state, so runs on one model take turns."""
    extra = {} if controlnets is None else {"controlnet": controlnets.module}
    pipe = model.variant(pipeline_class(model, task, controlnets), **extra)
    swaps = {"scheduler": sampler if sampler is not None else make_scheduler(model, scheduler), "vae": vae}
    originals = {name: getattr(pipe, name) for name, module in swaps.items() if module is not None}
    for name in originals:
        setattr(pipe, name, swaps[name])
    try:
        yield pipe
    finally:
        for name, module in originals.items():
            setattr(pipe, name, module)


@contextmanager
def applied_loras(model: DiffusionModel, loras: Sequence[Mapping[str, Any]], ctx: NodeContext) -> Iterator[None]:
    """Apply LoRAs (diffusers or kohya format) for the duration of a block; always removed afterwards, also when
    loading one of them fails, so the shared pipeline is left as the base model."""
    if not loras:
        yield
        return
    pipe = model.pipe
    names: list[str] = []
    try:
        for i, lora in enumerate(loras):
            names.append(f"nodeforge_{i}")
            _load_lora(model, lora["model"], names[-1], ctx, i)
        pipe.set_adapters(names, adapter_weights=[float(lora.get("weight", 1.0)) for lora in loras])
        yield
    finally:
        if names:
            pipe.unload_lora_weights()


def _load_lora(model: DiffusionModel, name: str, adapter: str, ctx: NodeContext, index: int) -> None:
    where = f"loras[{index}]"
    try:
        resolved = ctx.models.resolve(name, input="loras")
    except NodeError as exc:
        raise NodeError(f"{where}: {exc}", input="loras") from None
    path = resolved.path
    kwargs: dict[str, Any] = {"adapter_name": adapter}
    if path.is_file():
        kwargs["weight_name"] = path.name
        path = path.parent
    denoiser = "transformer" if model.family in FLOW_FAMILIES else "unet"
    try:
        model.pipe.load_lora_weights(str(path), **kwargs)
    except Exception as exc:  # noqa: BLE001 - size mismatches, unknown key layouts: the LoRA does not fit
        raise NodeError(f"{where}: LoRA '{name}' does not fit model '{model.name}' ({model.family}): "
                        f"{type(exc).__name__}: {first_line(exc)}; a LoRA must be trained for the same base model "
                        "(diffusers or kohya format)", input="loras") from None
    placed = model.pipe.get_list_adapters()
    if not any(adapter in placed.get(component, []) for component in (denoiser, "text_encoder", "text_encoder_2")):
        raise NodeError(f"{where}: LoRA '{name}' does not fit model '{model.name}' ({model.family}): none of its "
                        f"weights match the model's layers; a LoRA must be trained for the same base model "
                        "(diffusers or kohya format)", input="loras")


def quiet_loading() -> None:
    """No progress bars and no warnings from diffusers: the engine reports progress itself, and the nodes check
    what matters (LoRAs that fit nothing, sizes) and say so as node warnings or errors. The remaining diffusers
    warnings are about its own internals (dtype casts of modules with nothing to keep in fp32, the safety checker
    that nodeforge does not load)."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    quiet_transformers()
