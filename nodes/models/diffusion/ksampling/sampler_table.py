"""ComfyUI's sampler names -> the walks that reproduce them, and the noise each draws.

``ddim`` is ComfyUI's euler (it differs only when inpainting); the ``_gpu`` SDE variants keep their Brownian tree
on the latent's device in ComfyUI, which gives other numbers than the CPU tree on a GPU, so they are reproduced on
the CPU tree and named as such by the importer. Samplers that are not here (adaptive step sizes, CFG++ variants
that need the unguided prediction, ...) are refused by name rather than replaced silently.
"""

from __future__ import annotations

from nodeforge.nodes.models.diffusion.ksampling import samplers_dpm as dpm
from nodeforge.nodes.models.diffusion.ksampling import samplers_euler as eul
from nodeforge.nodes.models.diffusion.ksampling import samplers_unipc as unipc
from nodeforge.nodes.models.diffusion.ksampling.walk import SamplerSpec

SAMPLERS: dict[str, SamplerSpec] = {
    "euler": SamplerSpec(eul.euler), "euler_ancestral": SamplerSpec(eul.euler_ancestral, "step"),
    "heun": SamplerSpec(eul.heun), "heunpp2": SamplerSpec(eul.heunpp2), "dpm_2": SamplerSpec(eul.dpm_2),
    "dpm_2_ancestral": SamplerSpec(eul.dpm_2_ancestral, "step"), "lms": SamplerSpec(eul.lms),
    "dpmpp_2s_ancestral": SamplerSpec(dpm.dpmpp_2s_ancestral, "step"),
    "dpmpp_sde": SamplerSpec(dpm.dpmpp_sde, "brownian"), "dpmpp_2m": SamplerSpec(dpm.dpmpp_2m),
    "dpmpp_2m_sde": SamplerSpec(dpm.dpmpp_2m_sde, "brownian"),
    "dpmpp_2m_sde_heun": SamplerSpec(dpm.dpmpp_2m_sde_heun, "brownian"),
    "dpmpp_3m_sde": SamplerSpec(dpm.dpmpp_3m_sde, "brownian"),
    "ddpm": SamplerSpec(eul.ddpm, "step"), "lcm": SamplerSpec(eul.lcm, "step"), "ipndm": SamplerSpec(eul.ipndm),
    "ipndm_v": SamplerSpec(eul.ipndm_v), "ddim": SamplerSpec(eul.euler), "uni_pc": SamplerSpec(unipc.uni_pc),
    "uni_pc_bh2": SamplerSpec(unipc.uni_pc_bh2),
}
"""Every ComfyUI sampler nodeforge reproduces."""

GPU_TREE_VARIANTS = {"dpmpp_sde_gpu": "dpmpp_sde", "dpmpp_2m_sde_gpu": "dpmpp_2m_sde",
                     "dpmpp_2m_sde_heun_gpu": "dpmpp_2m_sde_heun", "dpmpp_3m_sde_gpu": "dpmpp_3m_sde"}
"""ComfyUI's ``_gpu`` SDE samplers and the CPU-tree sampler nodeforge runs for them."""

SAMPLER_NAMES = tuple(SAMPLERS)


def sampler_problem(name: str) -> str | None:
    """Why ``name`` cannot be used as a sampler; None when it can."""
    if name in SAMPLERS:
        return None
    if name in GPU_TREE_VARIANTS:
        return f"sampler '{name}' draws its noise on the GPU in ComfyUI; use '{GPU_TREE_VARIANTS[name]}' (the same " \
               "sampler with its noise drawn on the CPU)"
    return f"unknown sampler '{name}'; accepted: {', '.join(SAMPLER_NAMES)}"
