"""The diffusion nodes with a ComfyUI sampler (``sampler`` + ``sigma_schedule``): the picture equals ComfyUI's
sampling loop written out by hand on the same pipeline's networks (CFG on denoised latents, the seed's start noise,
the walk with its own noise), image i of a batch is image i of the batch's noise, and bad names are refused before
anything runs, naming the node and the input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.session import Session
from nodeforge.engine.values import Image
from nodeforge.nodes.models.diffusion.ksampling.noise import brownian_noise, start_noise, step_noise
from nodeforge.nodes.models.diffusion.ksampling.sampler_table import SAMPLERS
from nodeforge.nodes.models.diffusion.ksampling.schedules import sampling_sigmas
from nodeforge.nodes.models.diffusion.ksampling.spaces import space_for
from nodeforge.nodes.models.diffusion.ksampling.walk import drive, no_noise
from nodeforge.nodes.models.tiny.tiny_image import build_sd
from tests.nodes.image_support import generate, image_executor, run_nodes, succeeded

__all__ = ["image_executor"]


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-sd")
    build_sd(folder)
    return folder


def comfy_loop(folder: Path, *, prompt: str, sampler: str, schedule: str, steps: int, cfg: float, seed: int,
               size: int, count: int = 1, picture: Any = None, mask: Any = None, denoise: float = 1.0) -> Any:
    """ComfyUI's KSampler, written out: the start noise of the seed (over the encoded ``picture``, when there is
    one), CFG mixing denoised latents, the noise ``mask`` re-noising the kept area before each model call and
    restoring it after, the sampler's walk with its own noise, then the VAE."""
    from diffusers import StableDiffusionPipeline
    from torch.nn import functional as F  # noqa: N812

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    cond, uncond = pipe.encode_prompt(prompt, "cpu", count, True, negative_prompt="")
    space = space_for("sd", pipe.scheduler.config)
    sigmas = sampling_sigmas(space, schedule, steps, sampler=sampler, denoise=denoise)
    factor = int(pipe.vae_scale_factor)
    shape = (count, 4, size // factor, size // factor)
    latent = torch.zeros(shape)
    if picture is not None:
        with torch.no_grad():
            latent = pipe.vae.encode(picture * 2 - 1).latent_dist.mode() * pipe.vae.config.scaling_factor
    noise = start_noise(shape, seed)
    x = space.noise_scaling(sigmas[0], noise, latent, space.is_max_denoise(sigmas))
    small = None if mask is None else F.interpolate(mask, size=shape[2:], mode="bilinear").repeat(1, 4, 1, 1)

    def model(x: Any, sigma: Any) -> Any:
        if small is not None:
            x = x * small + space.noise_scaling(sigma, noise, latent) * (1 - small)
        x_in, t = space.calculate_input(sigma, x), space.timestep(sigma).float()
        with torch.no_grad():
            predicted = [space.calculate_denoised(sigma, pipe.unet(x_in, t, encoder_hidden_states=c).sample, x)
                         for c in (uncond, cond)]
        guided = predicted[0] + (predicted[1] - predicted[0]) * cfg
        return guided if small is None else guided * small + latent * (1 - small)

    spec = SAMPLERS[sampler]
    draws = {"step": lambda: step_noise(x, seed), "brownian": lambda: brownian_noise(x, sigmas, seed)}
    latent = drive(spec.walk(x, sigmas, draws[spec.noise]() if spec.noise in draws else no_noise, space), model)
    with torch.no_grad():
        decoded = pipe.vae.decode(latent / pipe.vae.config.scaling_factor).sample
    return (decoded / 2 + 0.5).clamp(0, 1)


@pytest.mark.parametrize(("sampler", "schedule"), [("euler_ancestral", "karras"), ("dpmpp_2m_sde", "normal"),
                                                   ("heun", "exponential"), ("dpm_2_ancestral", "sgm_uniform")])
def test_generate_draws_comfyuis_sampling_loop(image_executor: Session, sd_folder: Path, sampler: str,
                                               schedule: str) -> None:
    node = generate(str(sd_folder), sampler=sampler, sigma_schedule=schedule, steps=4, seed=11, width=64, height=64)
    image = succeeded(run_nodes(image_executor, {"g": node}))["g.image"]
    expected = comfy_loop(sd_folder, prompt="a red fox in the snow", sampler=sampler, schedule=schedule, steps=4,
                          cfg=4.0, seed=11, size=64)
    torch.testing.assert_close(image.tensor.float().cpu(), expected, rtol=0, atol=2e-4)


def test_image_i_of_a_batch_is_image_i_of_the_batch_noise(image_executor: Session, sd_folder: Path) -> None:
    node = generate(str(sd_folder), sampler="euler", sigma_schedule="normal", steps=3, seed=5, count=2)
    batch = succeeded(run_nodes(image_executor, {"g": node}))["g.image"].tensor.float().cpu()
    expected = comfy_loop(sd_folder, prompt="a red fox in the snow", sampler="euler", schedule="normal", steps=3,
                          cfg=4.0, seed=5, size=64, count=2)
    torch.testing.assert_close(batch, expected, rtol=0, atol=2e-4)
    single = succeeded(run_nodes(image_executor, {"g": {**node, "inputs": {**node["inputs"], "count": 1}}}))
    torch.testing.assert_close(single["g.image"].tensor.float().cpu(), batch[:1], rtol=0, atol=2e-4)


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2m"])
def test_inpaint_draws_comfyuis_noise_mask_loop(image_executor: Session, sd_folder: Path, sampler: str) -> None:
    picture = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 8:40] = 1.0
    document = parse_document({
        "inputs": {"picture": {"type": "image"}, "mask": {"type": "image"}},
        "nodes": {"m": {"type": "mask.from_image", "inputs": {"image": {"input": "mask"}, "channel": "red"}},
                  "g": {"type": "image.inpaint", "inputs": {
            "image": {"input": "picture"}, "mask": {"from": "m.mask"}, "prompt": "a red fox in the snow",
            "model": str(sd_folder), "steps": 4, "guidance_scale": 4.0, "seed": 9, "strength": 0.8,
            "sampler": sampler, "sigma_schedule": "karras"}}}})
    result = image_executor.run(document, {"picture": Image(picture), "mask": Image(mask.repeat(1, 3, 1, 1))})
    painted = succeeded(result)["g.image"].tensor.float().cpu()
    drawn = comfy_loop(sd_folder, prompt="a red fox in the snow", sampler=sampler, schedule="karras", steps=4,
                       cfg=4.0, seed=9, size=64, picture=picture, mask=mask, denoise=0.8)
    torch.testing.assert_close(painted, (picture * (1 - mask) + drawn * mask).clamp(0, 1), rtol=0, atol=2e-4)


@pytest.mark.parametrize("model", ["tiny/sdxl", "tiny/sd3", "tiny/flux"])
def test_every_family_samples_and_transforms_with_a_comfy_sampler(image_executor: Session, model: str) -> None:
    nodes = {"g": generate(model, sampler="euler_ancestral", sigma_schedule="simple", width=32, height=32),
             "t": {"type": "image.transform", "inputs": {"image": {"from": "g.image"}, "prompt": "x", "model": model,
                                                          "steps": 4, "strength": 0.5, "seed": 3,
                                                          "sampler": "dpmpp_2m_sde", "sigma_schedule": "karras"}}}
    first = succeeded(run_nodes(image_executor, nodes))
    again = succeeded(run_nodes(image_executor, nodes))
    assert tuple(first["t.image"].tensor.shape) == (1, 3, 32, 32)
    assert torch.equal(first["t.image"].tensor, again["t.image"].tensor)


def test_bad_sampling_names_are_refused_naming_node_and_input(image_executor: Session) -> None:
    with pytest.raises(GraphValidationError) as info:
        run_nodes(image_executor, {
            "a": generate(sampler="warp"),
            "b": generate(sampler="euler", scheduler="ddim"),
            "c": generate("tiny/sd3", sampler="euler", sigma_schedule="ays"),
            "d": generate(sampler="euler", sigma_schedule="cosine"),
        })
    issues = {(issue.node, issue.input): issue.message for issue in info.value.issues}
    assert issues[("a", "sampler")].startswith("unknown sampler 'warp'; accepted: euler, euler_ancestral, heun")
    assert issues[("b", "scheduler")] == ("scheduler 'ddim' and sampler 'euler' both choose how to sample; keep "
                                          "scheduler 'default' when a ComfyUI sampler is set")
    assert issues[("c", "sigma_schedule")] == "Align Your Steps (ays) has noise levels for SD 1.x and SDXL models, " \
                                              "not sd3"
    assert issues[("d", "sigma_schedule")].startswith("unknown sigma_schedule 'cosine'; accepted: simple, ")


def test_flow_shift_changes_a_flux_run_and_is_refused_where_it_means_nothing(image_executor: Session) -> None:
    def flux(**inputs: Any) -> Any:
        node = generate("tiny/flux", sampler="euler", sigma_schedule="simple", width=32, height=32, **inputs)
        return succeeded(run_nodes(image_executor, {"g": node}))["g.image"].tensor

    assert not torch.equal(flux(flow_shift=3.0), flux())
    with pytest.raises(GraphValidationError) as info:
        run_nodes(image_executor, {"a": generate(sampler="euler", flow_shift=2.0),
                                   "b": generate("tiny/flux", flow_shift=2.0)})
    issues = {(issue.node, issue.input): issue.message for issue in info.value.issues}
    assert issues[("a", "flow_shift")] == "flow_shift applies to Flux and SD3 models, not sd"
    assert issues[("b", "flow_shift")] == "flow_shift is used with a ComfyUI sampler; set sampler too"
