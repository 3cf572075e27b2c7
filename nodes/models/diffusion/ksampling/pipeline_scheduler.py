"""A diffusers scheduler that runs one of ComfyUI's samplers, so a diffusers pipeline draws ComfyUI's picture.

A pipeline asks its scheduler for ``timesteps``, scales each model input with ``scale_model_input`` and hands every
model output to ``step``; this scheduler turns the output into the denoised latent (``NoiseSpace``) and sends it
to the sampler's walk, whose next request becomes the next latent the pipeline denoises. The model calls a
sampler will make are known from the schedule (a dry run lists them), so two-stage samplers such as heun simply
have more timesteps. The latent stays float32 inside the walk, as in ComfyUI, whatever dtype the pipeline uses.
The noise is ComfyUI's too: the start noise and any noise the pipeline adds to an image come from the seed
(``add_noise``/``scale_noise`` ignore the pipeline's own draw), per-step noise from a fresh generator or a
Brownian tree (``noise``).

One instance serves one run: it is built per call with the run's sampler, schedule, steps, denoise and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nodeforge.nodes.models.diffusion.ksampling.noise import Pack, brownian_noise, start_noise, step_noise
from nodeforge.nodes.models.diffusion.ksampling.sampler_table import SAMPLERS
from nodeforge.nodes.models.diffusion.ksampling.schedules import sampling_sigmas
from nodeforge.nodes.models.diffusion.ksampling.spaces import NoiseSpace
from nodeforge.nodes.models.diffusion.ksampling.walk import Walk, no_noise, requested_sigmas


@dataclass(frozen=True)
class SamplingPlan:
    """What ComfyUI's KSampler is told: sampler and scheduler names, steps, denoise, seed (and the family, for
    Align Your Steps' levels)."""

    sampler: str
    schedule: str
    steps: int
    seed: int
    denoise: float = 1.0
    family: str = "sd"


@dataclass(frozen=True)
class Packing:
    """How a pipeline packs its latents (Flux): the spatial shape ComfyUI draws noise in, and the packing."""

    shape: tuple[int, ...]
    pack: Pack


class KSamplerScheduler:
    """diffusers' scheduler interface over a ComfyUI sampler (see the module docstring)."""

    order = 1

    def __init__(self, config: Any, space: NoiseSpace, plan: SamplingPlan, packing: Packing | None = None) -> None:
        import torch

        self.config = config
        self.space = space
        self.plan = plan
        self.packing = packing
        self.spec = SAMPLERS[plan.sampler]
        self.sigmas = sampling_sigmas(space, plan.schedule, plan.steps, sampler=plan.sampler, denoise=plan.denoise,
                                      family=plan.family)
        self._asked = requested_sigmas(self.spec, self.sigmas, space)
        self.timesteps = torch.stack([space.pipeline_timestep(s) for s in self._asked]) if self._asked \
            else torch.zeros(0)
        self._walk: Walk | None = None
        self._x: Any = None
        self._index = 0
        self._dtype: Any = None
        self._start_x: Any = None
        self.mask: Any = None
        self._latent: Any = None
        self._blend_noise: Any = None

    @property
    def num_evaluations(self) -> int:
        return len(self._asked)

    @property
    def init_noise_sigma(self) -> Any:
        """What a text-to-image pipeline multiplies its start noise by (noise-prediction models)."""
        import torch

        first = self.sigmas[0]
        return torch.sqrt(1.0 + first ** 2.0) if self.space.is_max_denoise(self.sigmas) else first

    def set_timesteps(self, num_inference_steps: int | None = None, device: Any = None, sigmas: Any = None,
                      mu: float | None = None, timesteps: Any = None) -> None:
        """The pipeline's call; the plan fixed the steps already (a Flux pipeline passes its own ``sigmas`` and
        ``mu``, which ComfyUI does not use)."""
        if device is not None:
            self.timesteps = self.timesteps.to(device)
        self._walk, self._x, self._index = None, None, 0

    def set_begin_index(self, begin_index: int = 0) -> None:
        if begin_index:
            raise ValueError("a ComfyUI sampler starts at its first sigma; denoise is set in its plan")

    def start_latents(self, shape: tuple[int, ...]) -> Any:
        """ComfyUI's start noise for a text-to-image run, as the pipeline's ``latents`` argument: raw noise for
        noise-prediction pipelines (they multiply by ``init_noise_sigma``), noise at the first sigma for flow
        pipelines (packed when the pipeline packs)."""
        noise = start_noise(self.packing.shape if self.packing else shape, self.plan.seed)
        if self.space.flow:
            noise = self.space.noise_scaling(self.sigmas[0], noise, noise.new_zeros(noise.shape))
        return self.packing.pack(noise) if self.packing else noise

    def add_noise(self, original_samples: Any, noise: Any, timesteps: Any) -> Any:
        """The start of an image-to-image run: the image's latent with the seed's noise at the first sigma (with
        a ``mask``, the kept area re-noised from the picture, as ComfyUI's inpainting shows it to the model)."""
        packed = self.packing is not None and original_samples.ndim == 3  # Flux adds noise before packing
        shape = self.packing.shape if packed and self.packing else tuple(original_samples.shape)
        fresh = start_noise(shape, self.plan.seed)
        if packed and self.packing:
            fresh = self.packing.pack(fresh)
        fresh = fresh.to(original_samples.device)
        latent = original_samples.float()
        self._start_x = self.space.noise_scaling(self.sigmas[0].to(latent.device), fresh, latent,
                                                 self.space.is_max_denoise(self.sigmas))
        if self.mask is None:
            return self._start_x.to(original_samples.dtype)
        self._latent = latent
        # ComfyUI's "ddim" re-noises the kept area with another draw (the seed + 1), every other sampler with the
        # start noise
        self._blend_noise = start_noise(shape, self.plan.seed + 1).to(latent.device) \
            if self.plan.sampler == "ddim" else fresh
        return self._blended(self._start_x, self.sigmas[0]).to(original_samples.dtype)

    def scale_noise(self, sample: Any, timestep: Any, noise: Any = None) -> Any:
        """Flow pipelines' name for ``add_noise``."""
        return self.add_noise(sample, noise, timestep)

    def scale_model_input(self, sample: Any, timestep: Any = None) -> Any:
        sigma = self._asked[self._index].to(sample.device)
        return self.space.calculate_input(sigma, sample.float()).to(sample.dtype)

    def step(self, model_output: Any, timestep: Any, sample: Any, return_dict: bool = True) -> Any:
        """Take one model output; the latent the model is to denoise next (or the final latent)."""
        if self._walk is None:
            self._start(sample)
        sigma = self._asked[self._index].to(self._x.device)
        seen = self._x if self.mask is None else self._blended(self._x, sigma)
        denoised = self.space.calculate_denoised(sigma, model_output.float(), seen)
        if self.mask is not None:
            denoised = denoised * self.mask + self._latent * (1.0 - self.mask)
        self._index += 1
        assert self._walk is not None
        try:
            self._x, sigma_next = self._walk.send(denoised)
            result = self._x if self.mask is None else self._blended(self._x, sigma_next)
        except StopIteration as finished:
            result = self.space.inverse_noise_scaling(self.sigmas[-1].to(self._x.device), finished.value)
            self._walk = None
        prev_sample = result.to(self._dtype)
        return (prev_sample,) if not return_dict else _Output(prev_sample)

    def _blended(self, x: Any, sigma: Any) -> Any:
        """What the model sees with a mask: ``x`` where it repaints, the picture re-noised to ``sigma`` elsewhere
        (ComfyUI's KSamplerX0Inpaint)."""
        kept = self.space.noise_scaling(sigma, self._blend_noise, self._latent)
        return x * self.mask + kept * (1.0 - self.mask)

    def _start(self, sample: Any) -> None:
        self._dtype = sample.dtype
        same = self._start_x is not None and tuple(self._start_x.shape) == tuple(sample.shape)
        x = self._start_x if same else sample.float()  # Flux packs its latents after adding the noise
        sigmas = self.sigmas.to(x.device)
        shape = self.packing.shape if self.packing else None
        pack = self.packing.pack if self.packing else None
        if self.spec.noise == "step":
            noise = step_noise(x, self.plan.seed, shape=shape, pack=pack)
        elif self.spec.noise == "brownian":
            noise = brownian_noise(x, sigmas, self.plan.seed, shape=shape, pack=pack)
        else:
            noise = no_noise
        self._walk = self.spec.walk(x, sigmas, noise, self.space)
        self._x, _ = next(self._walk)


@dataclass
class _Output:
    prev_sample: Any
