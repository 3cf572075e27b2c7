"""nodeforge's samplers and schedules against ComfyUI's own numbers (tests/data/comfy_sampling: ComfyUI 0.3.64 run on
a toy denoiser, see its README). Every sampler x schedule case there must come out the same here, both when the
walk is driven directly and when a diffusers-style pipeline loop drives it through ``KSamplerScheduler``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

from nodeforge.nodes.models.diffusion.ksampling.noise import brownian_noise, start_noise, step_noise
from nodeforge.nodes.models.diffusion.ksampling.pipeline_scheduler import KSamplerScheduler, SamplingPlan
from nodeforge.nodes.models.diffusion.ksampling.sampler_table import GPU_TREE_VARIANTS, SAMPLERS, sampler_problem
from nodeforge.nodes.models.diffusion.ksampling.schedules import (
    SCHEDULES,
    align_your_steps,
    sampling_sigmas,
    schedule_sigmas,
    sd_turbo,
)
from nodeforge.nodes.models.diffusion.ksampling.spaces import NoiseSpace
from nodeforge.nodes.models.diffusion.ksampling.walk import drive, no_noise

REFERENCE = Path(__file__).parents[1] / "data" / "comfy_sampling" / "reference.safetensors"
SPACES = {"eps": NoiseSpace("eps"), "v": NoiseSpace("v"), "sd3": NoiseSpace("flow", "shifted", shift=3.0),
          "flux": NoiseSpace("flow", "flux", shift=1.15)}


@cache
def reference() -> tuple[dict[str, Any], dict[str, str]]:
    with safe_open(str(REFERENCE), "pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}, f.metadata()  # noqa: SIM118 - safe_open is not a dict


def cases() -> list[str]:
    return json.loads(reference()[1]["cases"])


def toy_network(space_name: str) -> Any:
    """The toy of the reference README: a fixed channel mix through tanh, plus a little of the timestep."""
    channels = 4 if space_name in ("eps", "v") else 16
    weights = torch.randn(channels, channels, generator=torch.Generator().manual_seed(1234)) / channels ** 0.5

    def network(x_in: Any, timestep: Any) -> Any:
        return torch.tanh(torch.einsum("oc,bchw->bohw", weights, x_in)) * 0.8 \
            + 0.05 * (timestep.float() / 1000.0).view(-1, 1, 1, 1)

    return network


def toy_denoiser(space_name: str) -> Any:
    space, network = SPACES[space_name], toy_network(space_name)

    def denoise(x: Any, sigma: Any) -> Any:
        return space.calculate_denoised(sigma, network(space.calculate_input(sigma, x), space.timestep(sigma)), x)

    return denoise


def latent_for(space_name: str, case: str) -> Any:
    shape = (2, 4 if space_name in ("eps", "v") else 16, 4, 4)
    if case == "i2i":
        return torch.randn(shape, generator=torch.Generator().manual_seed(7))
    return torch.zeros(shape)


@pytest.mark.parametrize("case", cases())
def test_sampler_matches_comfyui(case: str) -> None:
    tensors, _ = reference()
    space_name, sampler, schedule, kind = case.split("/")
    space = SPACES[space_name]
    ours = GPU_TREE_VARIANTS.get(sampler, sampler)
    sigmas = sampling_sigmas(space, schedule, 6, sampler=ours, denoise=0.6 if kind == "i2i" else 1.0)
    used = tensors[f"used_sigmas/{case}"].clone()
    if sampler.startswith("uni_pc"):  # ComfyUI's uni_pc writes 0.001 over the last sigma of the schedule it is given
        assert float(used[-1]) == pytest.approx(0.001)
        used[-1] = 0
    torch.testing.assert_close(sigmas, used, rtol=0, atol=0)
    noise = start_noise(tuple(latent_for(space_name, kind).shape), 42)
    torch.testing.assert_close(noise, tensors[f"noise/{space_name}"], rtol=0, atol=0)
    x = space.noise_scaling(sigmas[0], noise, latent_for(space_name, kind), space.is_max_denoise(sigmas))
    spec = SAMPLERS[ours]
    draws = {"step": lambda: step_noise(x, 42), "brownian": lambda: brownian_noise(x, sigmas, 42)}
    walk = spec.walk(x, sigmas, draws[spec.noise]() if spec.noise in draws else no_noise, space)
    out = space.inverse_noise_scaling(sigmas[-1], drive(walk, toy_denoiser(space_name)))
    torch.testing.assert_close(out, tensors[f"out/{case}"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_schedule_matches_comfyui(space_name: str, schedule: str) -> None:
    expected = reference()[0][f"sigmas/{space_name}/{schedule}"]
    torch.testing.assert_close(schedule_sigmas(SPACES[space_name], schedule, 6), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("family", "model_type"), [("sd", "SD1"), ("sdxl", "SDXL")])
@pytest.mark.parametrize("steps", [6, 10])
@pytest.mark.parametrize("denoise", [1.0, 0.6])
def test_align_your_steps_matches_comfyui(family: str, model_type: str, steps: int, denoise: float) -> None:
    expected = reference()[0][f"sigmas/eps/align_your_steps/{model_type}/{steps}/{denoise}"]
    torch.testing.assert_close(align_your_steps(family, steps, denoise), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_sd_turbo_schedule_matches_comfyui(steps: int) -> None:
    expected = reference()[0][f"sigmas/eps/sd_turbo/{steps}"]
    torch.testing.assert_close(sd_turbo(SPACES["eps"], steps), expected, rtol=1e-6, atol=1e-6)


def pipeline_loop(scheduler: KSamplerScheduler, network: Any, latents: Any) -> Any:
    """What a diffusers pipeline does with its scheduler: scale, call the model, step, for every timestep."""
    scheduler.set_timesteps(6, device="cpu")
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        latents = scheduler.step(network(model_input, t), t, latents, return_dict=False)[0]
    return latents


@pytest.mark.parametrize("case", [c for c in cases() if c.split("/")[0] in ("eps", "v", "flux")
                                  and c.split("/")[1] not in GPU_TREE_VARIANTS])
def test_scheduler_in_a_pipeline_loop_matches_comfyui(case: str) -> None:
    tensors, _ = reference()
    space_name, sampler, schedule, kind = case.split("/")
    space = SPACES[space_name]
    plan = SamplingPlan(sampler, schedule, 6, seed=42, denoise=0.6 if kind == "i2i" else 1.0)
    scheduler = KSamplerScheduler({}, space, plan)
    network = toy_network(space_name)
    if space.flow:  # diffusers' Flux pipeline hands its transformer the timestep / 1000, which ComfyUI calls sigma
        toy = network
        network = lambda x_in, t: toy(x_in, t / 1000)  # noqa: E731
    shape = tuple(latent_for(space_name, kind).shape)
    if kind == "i2i":
        latents = scheduler.add_noise(latent_for(space_name, kind), torch.randn(shape), scheduler.timesteps[:1])
    elif space.flow:
        latents = scheduler.start_latents(shape)
    else:
        latents = scheduler.start_latents(shape) * scheduler.init_noise_sigma
    torch.testing.assert_close(pipeline_loop(scheduler, network, latents), tensors[f"out/{case}"], rtol=1e-5,
                               atol=1e-5)


def test_unknown_and_gpu_tree_samplers_are_refused_by_name() -> None:
    assert sampler_problem("euler") is None
    assert "unknown sampler 'uni_pc_bh3'" in str(sampler_problem("uni_pc_bh3"))
    assert "use 'dpmpp_2m_sde'" in str(sampler_problem("dpmpp_2m_sde_gpu"))
