"""Controls for the diffusion nodes: which ControlNet or IP-Adapter fits which model, loading ControlNets once per
device, and the call arguments that give a pipeline its control pictures, weights and step ranges.

A ``Control`` value (``nodeforge.engine.values``) names its model; the diffusion node resolves and loads it here, on
its own device, with the dtype of the model it steers. Several ControlNets in one run become diffusers'
Multi-ControlNet (each with its own weight and range); several controls of one ControlNet-Union model become one
union call with a control type per picture.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodeforge.engine.declarations import ModelKind
from nodeforge.engine.errors import NodeError, first_line
from nodeforge.engine.model_source import ModelSource, ResolvedModel
from nodeforge.engine.values import Control

if TYPE_CHECKING:
    from nodeforge.engine.context import NodeContext

# The family of an adapter model names the base family it was trained for.
CONTROLNET_BASE = {"controlnet-sd": "sd", "controlnet-sdxl": "sdxl", "controlnet-union-sdxl": "sdxl",
                   "controlnet-flux": "flux", "controlnet-sd3": "sd3"}
IP_ADAPTER_BASE = {"ip-adapter-sd": "sd", "ip-adapter-sdxl": "sdxl"}
CONTROLNET_FAMILIES = tuple(CONTROLNET_BASE)
IP_ADAPTER_FAMILIES = tuple(IP_ADAPTER_BASE)
CONTROL_FAMILIES = CONTROLNET_FAMILIES + IP_ADAPTER_FAMILIES
CONTROLNET = ModelKind("controlnet", CONTROLNET_FAMILIES)
IP_ADAPTER = ModelKind("ip_adapter", IP_ADAPTER_FAMILIES)
CONTROLS = ModelKind("controlnet", CONTROL_FAMILIES)
"""The models named by the controls linked into a diffusion node (ControlNets and IP-Adapters)."""
ALL_BASES = {**CONTROLNET_BASE, **IP_ADAPTER_BASE}

# ControlNet-Union (ProMax) control types, as its model card numbers them.
UNION_MODES = {"openpose": 0, "depth": 1, "hed": 2, "pidi": 2, "scribble": 2, "ted": 2, "canny": 3, "lineart": 3,
               "anime_lineart": 3, "mlsd": 3, "normal": 4, "segment": 5, "tile": 6, "repaint": 7}

# (base family, task) -> the diffusers pipeline that takes ControlNets; "sdxl-union" for ControlNet-Union models.
CONTROLNET_PIPELINES = {
    ("sd", "text"): "StableDiffusionControlNetPipeline",
    ("sd", "image"): "StableDiffusionControlNetImg2ImgPipeline",
    ("sd", "inpaint"): "StableDiffusionControlNetInpaintPipeline",
    ("sdxl", "text"): "StableDiffusionXLControlNetPipeline",
    ("sdxl", "image"): "StableDiffusionXLControlNetImg2ImgPipeline",
    ("sdxl", "inpaint"): "StableDiffusionXLControlNetInpaintPipeline",
    ("sdxl-union", "text"): "StableDiffusionXLControlNetUnionPipeline",
    ("sdxl-union", "image"): "StableDiffusionXLControlNetUnionImg2ImgPipeline",
    ("sdxl-union", "inpaint"): "StableDiffusionXLControlNetUnionInpaintPipeline",
    ("flux", "text"): "FluxControlNetPipeline",
    ("flux", "image"): "FluxControlNetImg2ImgPipeline",
    ("flux", "inpaint"): "FluxControlNetInpaintPipeline",
    ("sd3", "text"): "StableDiffusion3ControlNetPipeline",
    ("sd3", "inpaint"): "StableDiffusion3ControlNetInpaintingPipeline",
}
CONTROLNET_CLASSES = {"ControlNetModel": None, "ControlNetUnionModel": "controlnet-union-sdxl",
                      "FluxControlNetModel": "controlnet-flux", "SD3ControlNetModel": "controlnet-sd3"}


def base_family(control: Control) -> str | None:
    """The model family a control was made for (None when its files did not say)."""
    if control.family is None:
        return None
    return (CONTROLNET_BASE if control.kind == "controlnet" else IP_ADAPTER_BASE).get(control.family)


def control_problems(controls: Any, family: str | None, model: str) -> list[str]:
    """Why some of ``controls`` cannot steer the diffusion model ``model`` of ``family``: wrong family, or
    ControlNet-Union mixed with other ControlNets. The diffusion nodes' ``check`` says these before anything loads."""
    if not isinstance(controls, list) or family is None:
        return []
    problems = []
    for i, control in enumerate(controls):
        if not isinstance(control, Control):
            continue
        base = base_family(control)
        if base is not None and base != family:
            what = "ControlNet" if control.kind == "controlnet" else "IP-Adapter"
            problems.append(f"controls[{i}]: {what} '{control.model}' is for {base} models, but model '{model}' is "
                            f"a {family} model; use one trained for {family}")
    nets = [c for c in controls if isinstance(c, Control) and c.kind == "controlnet"]
    unions = {c.model for c in nets if c.family == "controlnet-union-sdxl"}
    if unions and (len(unions) > 1 or len(unions) < len({c.model for c in nets})):
        problems.append("controls: a ControlNet-Union model takes every control picture itself (one mode each); "
                        "it cannot be combined with other ControlNets in one run")
    return problems


def linked_control_problems(model: Any, linked: Sequence[tuple[str, Any]], models: ModelSource) -> list[str]:
    """Validation of the controls linked into a diffusion node whose model and whose controls' models are both
    literals: ``linked`` holds (node type, model literal) per control, in order."""
    family = models.family_of(model) if isinstance(model, str) else None
    if family is None:
        return []
    problems = []
    for i, (node_type, name) in enumerate(linked):
        base = ALL_BASES.get(models.family_of(name) or "") if isinstance(name, str) else None
        if base is not None and base != family:
            what = "ControlNet" if node_type == "image.controlnet" else "IP-Adapter"
            problems.append(f"controls[{i}]: {what} '{name}' is for {base} models, but model '{model}' is a "
                            f"{family} model; use one trained for {family}")
    return problems


def family_of_controlnet(path: Path) -> str | None:
    """The family of a ControlNet from its diffusers ``config.json`` (class, and SDXL's text_time conditioning)."""
    folder = path if path.is_dir() else path.parent
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cls = str(config.get("_class_name", ""))
    if cls not in CONTROLNET_CLASSES:
        return None
    return CONTROLNET_CLASSES[cls] or \
        ("controlnet-sdxl" if config.get("addition_embed_type") == "text_time" else "controlnet-sd")


@dataclass
class ControlNets:
    """The ControlNets of one run, loaded on the node's device: the module a pipeline takes, and the per-control
    pictures, weights, ranges and union modes."""

    module: Any
    union: bool
    images: list[Any] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)

    def pipeline_key(self, family: str) -> str:
        return "sdxl-union" if self.union else family

    def call_kwargs(self, pipe: Any) -> dict[str, Any]:
        """Arguments for ``pipe(...)``: a union call takes lists, one ControlNet plain values, several lists."""
        takes = inspect.signature(type(pipe).__call__).parameters
        single = not self.union and len(self.images) == 1
        kwargs: dict[str, Any] = {
            ("control_image" if "control_image" in takes else "image"): self.images[0] if single else self.images,
            "controlnet_conditioning_scale": self.weights[0] if single or self.union else self.weights,
            "control_guidance_start": self.starts[0] if single else self.starts,
            "control_guidance_end": self.ends[0] if single else self.ends,
        }
        if self.union:
            kwargs["control_mode"] = self.modes
            kwargs["control_guidance_start"], kwargs["control_guidance_end"] = min(self.starts), max(self.ends)
        return kwargs


def load_controlnets(ctx: NodeContext, controls: Sequence[Control], family: str, dtype: Any,
                     size: tuple[int, int]) -> ControlNets | None:
    """The ControlNets among ``controls`` loaded on this node's device (None when there are none), with their
    pictures resized to ``size`` (height, width) and moved next to the model."""
    nets = [c for c in controls if c.kind == "controlnet"]
    if not nets:
        return None
    modules = [_load_controlnet(ctx, control, dtype, i) for i, control in enumerate(nets)]
    union = type(modules[0]).__name__ == "ControlNetUnionModel"
    module = modules[0] if union or len(modules) == 1 else _multi(modules, family)
    loaded = ControlNets(module, union)
    for control in nets:
        loaded.images.append(_picture(control, size, modules[0].device, dtype))
        loaded.weights.append(control.weight)
        loaded.starts.append(control.start)
        loaded.ends.append(control.end)
        if union:
            loaded.modes.append(_union_mode(control, int(modules[0].config.num_control_type)))
    return loaded


def _load_controlnet(ctx: NodeContext, control: Control, dtype: Any, index: int) -> Any:
    def build(resolved: ResolvedModel, device: str) -> Any:
        return _controlnet_from_files(resolved, dtype, device, index)

    return ctx.models.load(control.model, build, input="controls", variant=str(dtype))


def _controlnet_from_files(resolved: ResolvedModel, dtype: Any, device: str, index: int) -> Any:
    """A ControlNet from a diffusers folder (or a weights file beside its config.json), else a single file."""
    import diffusers

    path = resolved.path
    family = resolved.family or family_of_controlnet(path)
    cls_name = {"controlnet-union-sdxl": "ControlNetUnionModel", "controlnet-flux": "FluxControlNetModel",
                "controlnet-sd3": "SD3ControlNetModel"}.get(family or "", "ControlNetModel")
    cls = getattr(diffusers, cls_name)
    try:
        if path.is_dir():
            module = cls.from_pretrained(str(path), dtype=dtype)
        elif (path.parent / "config.json").is_file():
            module = cls.from_pretrained(str(path.parent), dtype=dtype)
        else:
            module = cls.from_single_file(str(path), dtype=dtype)
    except Exception as exc:  # noqa: BLE001 - any load failure becomes one message naming the model
        hint = " (a single ControlNet file without its config.json needs its configuration from the Hugging Face " \
               "Hub once; offline, use the diffusers folder)" if path.is_file() else ""
        raise NodeError(f"controls[{index}]: ControlNet '{resolved.name}' could not be loaded from {path}: "
                        f"{type(exc).__name__}: {first_line(exc)}{hint}", input="controls") from None
    return module.to(device)


def _multi(modules: list[Any], family: str) -> Any:
    from diffusers import FluxMultiControlNetModel, MultiControlNetModel, SD3MultiControlNetModel

    cls = {"flux": FluxMultiControlNetModel, "sd3": SD3MultiControlNetModel}.get(family, MultiControlNetModel)
    return cls(modules)


def _union_mode(control: Control, known: int) -> int:
    mode = (control.mode or "").strip()
    if not mode:
        raise NodeError(f"ControlNet-Union model '{control.model}' needs a mode (the control type of its picture): "
                        f"one of {', '.join(UNION_MODES)}", input="controls")
    number = UNION_MODES.get(mode)
    if number is None or number >= known:
        accepted = ", ".join(name for name, value in UNION_MODES.items() if value < known)
        raise NodeError(f"ControlNet-Union model '{control.model}' has no mode '{mode}'; it knows: {accepted}",
                        input="controls")
    return number


def _picture(control: Control, size: tuple[int, int], device: Any, dtype: Any) -> Any:
    """The control picture as RGB at the output's size: ControlNets read the picture pixel for pixel."""
    from torch.nn import functional as F  # noqa: N812

    pixels = control.image.tensor[:1].float()
    if pixels.shape[1] == 1:
        pixels = pixels.repeat(1, 3, 1, 1)
    elif pixels.shape[1] == 4:
        pixels = pixels[:, :3]
    if tuple(pixels.shape[2:]) != size:
        pixels = F.interpolate(pixels, size=size, mode="bilinear", antialias=True).clamp(0, 1)
    return pixels.to(device=device, dtype=dtype)
