"""ComfyUI and A1111 sampler and scheduler names -> a diffusion node's sampling inputs.

A ComfyUI sampler nodeforge reproduces (``nodes/models/diffusion/ksampling``) becomes the node's ``sampler`` and
``sigma_schedule`` and draws ComfyUI's picture; any other pair falls back to the closest diffusers ``scheduler``
(``nodes/models/diffusion/pipelines.py``) and the caller is told why, so the import report says what will differ."""

from __future__ import annotations

from nodeforge.nodes.models.diffusion.ksampling.sampler_table import GPU_TREE_VARIANTS, SAMPLERS
from nodeforge.nodes.models.diffusion.ksampling.schedules import SCHEDULE_NAMES

# ComfyUI sampler_name -> (ours, exact?). Karras sigmas exist for the two DPM++ 2M variants only.
COMFY_SAMPLERS: dict[str, tuple[str, bool]] = {
    "euler": ("euler", True), "euler_cfg_pp": ("euler", False),
    "euler_ancestral": ("euler_a", True), "euler_ancestral_cfg_pp": ("euler_a", False),
    "heun": ("heun", True), "heunpp2": ("heun", False),
    "dpm_2": ("dpm2", True), "dpm_2_ancestral": ("dpm2_a", True),
    "lms": ("euler", False), "dpm_fast": ("dpmpp_2m", False), "dpm_adaptive": ("dpmpp_2m", False),
    "dpmpp_2s_ancestral": ("euler_a", False), "dpmpp_2s_ancestral_cfg_pp": ("euler_a", False),
    "dpmpp_sde": ("dpmpp_2m_sde", False), "dpmpp_sde_gpu": ("dpmpp_2m_sde", False),
    "dpmpp_2m": ("dpmpp_2m", True), "dpmpp_2m_cfg_pp": ("dpmpp_2m", False),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", True), "dpmpp_2m_sde_gpu": ("dpmpp_2m_sde", True),
    "dpmpp_3m_sde": ("dpmpp_2m_sde", False), "dpmpp_3m_sde_gpu": ("dpmpp_2m_sde", False),
    "ddpm": ("ddpm", True), "lcm": ("lcm", True), "ipndm": ("pndm", False), "ipndm_v": ("pndm", False),
    "deis": ("deis", True), "ddim": ("ddim", True), "uni_pc": ("unipc", True), "uni_pc_bh2": ("unipc", False),
    "res_multistep": ("dpmpp_2m", False), "gradient_estimation": ("euler", False), "er_sde": ("dpmpp_2m_sde", False),
}
KARRAS = {"dpmpp_2m": "dpmpp_2m_karras", "dpmpp_2m_sde": "dpmpp_2m_sde_karras"}
# Spacings diffusers' schedulers use by default (ComfyUI's "normal" and "simple" are the same idea).
PLAIN_SPACINGS = {"normal", "simple", "sgm_uniform", "ddim_uniform", ""}
FLOW = ("euler", "lcm")

# A1111 / Forge sampler labels -> ComfyUI sampler names (the label's "Karras" suffix is a scheduler).
A1111_SAMPLERS = {
    "euler": "euler", "euler a": "euler_ancestral", "lms": "lms", "heun": "heun", "dpm2": "dpm_2",
    "dpm2 a": "dpm_2_ancestral", "dpm++ 2s a": "dpmpp_2s_ancestral", "dpm++ 2m": "dpmpp_2m",
    "dpm++ sde": "dpmpp_sde", "dpm++ 2m sde": "dpmpp_2m_sde", "dpm++ 2m sde gpu": "dpmpp_2m_sde_gpu",
    "dpm++ 3m sde": "dpmpp_3m_sde", "dpm fast": "dpm_fast", "dpm adaptive": "dpm_adaptive", "ddim": "ddim",
    "plms": "ipndm", "unipc": "uni_pc", "lcm": "lcm", "ddpm": "ddpm", "deis": "deis",
    "heun pp2": "heunpp2", "dpm++ 2m sde heun": "dpmpp_2m_sde",
}
A1111_SCHEDULES = {"karras": "karras", "automatic": "normal", "uniform": "normal", "normal": "normal",
                   "simple": "simple", "sgm uniform": "sgm_uniform", "exponential": "exponential",
                   "ddim": "ddim_uniform", "beta": "beta", "align your steps": "ays", "polyexponential": "exponential",
                   "kl optimal": "kl_optimal"}


STOCHASTIC = frozenset(name for name, spec in SAMPLERS.items() if spec.noise != "none")
"""Samplers that draw noise at every step (ancestral, SDE, ddpm, lcm)."""


def comfy_sampling(sampler: str, scheduler: str, *, flow: bool = False, family: str | None = None,
                   inpaint: bool = False) -> tuple[dict[str, str], str | None]:
    """The node inputs for a ComfyUI ``sampler_name`` + ``scheduler`` pair, and a note when the picture will not
    be ComfyUI's: ``{"sampler", "sigma_schedule"}`` when nodeforge reproduces the pair, else ``{"scheduler"}``.
    ``inpaint``: the pass inpaints a flow model, which only the diffusers schedulers do."""
    said = f"{sampler} + {scheduler}" if scheduler else sampler
    ours = GPU_TREE_VARIANTS.get(sampler, sampler)
    reproducible = ours in SAMPLERS and (scheduler or "normal") in SCHEDULE_NAMES
    if scheduler == "ays" and family not in (None, "sd", "sdxl"):
        reproducible = False
    if reproducible and not inpaint:
        note = None
        if ours != sampler:
            note = f"sampler {sampler} runs as {ours}: its Brownian noise is drawn on the CPU (ComfyUI draws it on " \
                   "the GPU for _gpu samplers, so pictures made on a GPU differ)"
        return {"sampler": ours, "sigma_schedule": scheduler or "normal"}, note
    fallback, problem = comfy_scheduler(sampler, scheduler, flow=flow)
    if inpaint and reproducible:
        problem = f"{said}: inpainting a Flux or SD3 model with ComfyUI's sampler is not reproduced, so the closest " \
                  f"diffusers scheduler ({fallback}) is used and the picture differs from ComfyUI's"
    elif problem is None:
        problem = f"sampler {said} is not reproduced exactly; using the diffusers scheduler {fallback}"
    return {"scheduler": fallback}, problem


def comfy_scheduler(sampler: str, scheduler: str, *, flow: bool = False) -> tuple[str, str | None]:
    """Our scheduler for a ComfyUI ``sampler_name`` + ``scheduler`` pair, and a warning when it is not exact.
    ``flow``: the model is a flow-matching one (Flux, SD3), which has euler and lcm only."""
    said = f"{sampler} + {scheduler}" if scheduler else sampler
    ours, exact = COMFY_SAMPLERS.get(sampler, ("default", False))
    if sampler not in COMFY_SAMPLERS:
        return "default", f"sampler {said} has no equivalent; the model's own scheduler is used"
    if flow:
        if ours in FLOW:
            return ours, None if scheduler in PLAIN_SPACINGS else f"{said}: the {scheduler} spacing is not " \
                                                                  f"available for Flux/SD3; using {ours}"
        return "euler", f"sampler {said} is not available for Flux/SD3 models; using euler"
    if scheduler == "karras":
        if ours in KARRAS:
            return KARRAS[ours], None if exact else f"sampler {said} has no exact equivalent; using {KARRAS[ours]}"
        return ours, f"{said}: karras sigmas are available with dpmpp_2m and dpmpp_2m_sde only; using {ours} " \
                     "with its default spacing"
    if scheduler not in PLAIN_SPACINGS:
        return ours, f"{said}: the {scheduler} spacing has no equivalent; using {ours} with its default spacing"
    return ours, None if exact else f"sampler {said} has no exact equivalent; using {ours}"


def a1111_sampler(label: str, schedule: str = "") -> tuple[str, str]:
    """ComfyUI's (sampler, scheduler) pair for an A1111 ``Sampler`` label (``DPM++ 2M Karras``) and Forge's
    ``Schedule type``; an unknown label gives ``("", "")``."""
    words = label.strip().lower()
    scheduler = "normal"
    if words.endswith(" karras"):
        words, scheduler = words[: -len(" karras")], "karras"
    elif words.endswith(" exponential"):
        words, scheduler = words[: -len(" exponential")], "exponential"
    if schedule:
        scheduler = A1111_SCHEDULES.get(schedule.strip().lower(), schedule.strip().lower())
    sampler = A1111_SAMPLERS.get(words, "")
    return (sampler, scheduler) if sampler else ("", "")
