"""A model's noise space as ComfyUI's sampling sees it: the table of sigmas, sigma <-> model timestep, how the
model's input is scaled, how its output becomes the denoised latent, and how noise is mixed into a latent.

Noise-prediction models (SD 1.x/2.x, SDXL) have a discrete table of 1000 sigmas from their beta schedule and
predict the noise (``eps``) or the velocity (``v``); flow-matching models (SD3, Flux) have continuous sigmas in
0..1 bent by a ``shift`` and predict the velocity towards the data (``flow``). All arithmetic is float32 on the
CPU, in the same order as ComfyUI, so schedules agree to the last bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

Prediction = Literal["eps", "v", "flow"]


@dataclass(frozen=True)
class NoiseSpace:
    """One model's sampling space. ``kind`` is ``discrete`` (beta schedule), ``shifted`` (SD3's flow shift) or
    ``flux`` (Flux's exponential time shift)."""

    prediction: Prediction
    kind: Literal["discrete", "shifted", "flux"] = "discrete"
    shift: float = 1.0
    beta_start: float = 0.00085
    beta_end: float = 0.012
    table: Any = field(init=False, repr=False, compare=False)
    log_table: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = self._sigma_table()
        object.__setattr__(self, "table", table.float())
        object.__setattr__(self, "log_table", table.log().float())

    @property
    def flow(self) -> bool:
        return self.prediction == "flow"

    def _sigma_table(self) -> Any:
        import torch

        if self.kind == "discrete":
            betas = torch.linspace(self.beta_start ** 0.5, self.beta_end ** 0.5, 1000, dtype=torch.float64) ** 2
            alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
            return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5  # float64: the log table is taken before rounding
        if self.kind == "shifted":
            return self.sigma((torch.arange(1, 1001, 1) / 1000) * 1000)
        return self.sigma(torch.arange(1, 10001, 1) / 10000)

    @property
    def sigma_min(self) -> Any:
        return self.table[0]

    @property
    def sigma_max(self) -> Any:
        return self.table[-1]

    def timestep(self, sigma: Any) -> Any:
        """The model's timestep for a sigma: the nearest table entry for discrete models, sigma x 1000 for SD3,
        sigma itself for Flux (its network scales it)."""
        if self.kind == "discrete":
            dists = sigma.log() - self.log_table[:, None]
            return dists.abs().argmin(dim=0).view(sigma.shape)
        if self.kind == "shifted":
            return sigma * 1000
        return sigma

    def sigma(self, timestep: Any) -> Any:
        import torch

        if self.kind == "discrete":
            t = torch.clamp(timestep.float(), min=0, max=len(self.table) - 1)
            low, high, w = t.floor().long(), t.ceil().long(), t.frac()
            log_table = self.log_table
            return ((1 - w) * log_table[low] + w * log_table[high]).exp()
        if self.kind == "shifted":
            t = timestep / 1000
            return t if self.shift == 1.0 else self.shift * t / (1 + (self.shift - 1) * t)
        return math.exp(self.shift) / (math.exp(self.shift) + (1 / timestep - 1) ** 1.0)

    def percent_to_sigma(self, percent: float) -> float:
        if self.flow:
            if percent <= 0.0:
                return 1.0
            if percent >= 1.0:
                return 0.0
            t = 1.0 - percent
            if self.kind == "flux":
                return math.exp(self.shift) / (math.exp(self.shift) + (1 / t - 1) ** 1.0)
            return t if self.shift == 1.0 else self.shift * t / (1 + (self.shift - 1) * t)
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        import torch

        return float(self.sigma(torch.tensor((1.0 - percent) * 999.0)).item())

    def pipeline_timestep(self, sigma: Any) -> Any:
        """The timestep a diffusers pipeline hands its denoiser for ``sigma``: the discrete index, or sigma x 1000
        for both flow families (diffusers' Flux pipeline divides by 1000 again before its transformer)."""
        return self.timestep(sigma).float() if self.kind == "discrete" else sigma * 1000

    def calculate_input(self, sigma: Any, x: Any) -> Any:
        if self.flow:
            return x
        return x / (sigma ** 2 + 1.0) ** 0.5

    def calculate_denoised(self, sigma: Any, output: Any, x: Any) -> Any:
        if self.prediction == "v":
            return x * 1.0 / (sigma ** 2 + 1.0) - output * sigma * 1.0 / (sigma ** 2 + 1.0) ** 0.5
        return x - output * sigma

    def noise_scaling(self, sigma: Any, noise: Any, latent: Any, max_denoise: bool = False) -> Any:
        """The starting point of sampling: ``latent`` with ``noise`` mixed in at ``sigma``."""
        if self.flow:
            return sigma * noise + (1.0 - sigma) * latent
        import torch

        scaled = noise * torch.sqrt(1.0 + sigma ** 2.0) if max_denoise else noise * sigma
        return scaled + latent

    def inverse_noise_scaling(self, sigma: Any, latent: Any) -> Any:
        return latent / (1.0 - sigma) if self.flow else latent

    def is_max_denoise(self, sigmas: Any) -> bool:
        """Whether sampling starts from pure noise (ComfyUI then scales the noise by sqrt(1 + sigma^2))."""
        top, first = float(self.sigma_max), float(sigmas[0])
        return math.isclose(top, first, rel_tol=1e-05) or first > top


def space_for(family: str, scheduler_config: Any, *, guidance_distilled: bool = True,
              shift: float | None = None) -> NoiseSpace:
    """The noise space of a loaded pipeline from its family and its diffusers scheduler config (beta range and
    prediction type of SD models; SD3's shift). Flux takes ComfyUI's shifts: 1.15 for guidance-distilled models
    (dev), none for schnell (``guidance_distilled`` False: its transformer has no guidance embedding). ``shift``
    replaces a flow model's shift (ComfyUI's ModelSamplingFlux and ModelSamplingSD3 nodes)."""
    config = dict(scheduler_config or {})
    if family == "flux":
        return NoiseSpace("flow", "flux", shift=shift or (1.15 if guidance_distilled else 1.0))
    if family == "sd3":
        return NoiseSpace("flow", "shifted", shift=shift or float(config.get("shift", 3.0)))
    prediction: Prediction = "v" if config.get("prediction_type") == "v_prediction" else "eps"
    return NoiseSpace(prediction, "discrete", beta_start=float(config.get("beta_start", 0.00085)),
                      beta_end=float(config.get("beta_end", 0.012)))
