"""What every sampler is: a generator that walks the sigmas, asking for one denoised prediction at a time.

A sampler ``yield``s ``(x, sigma)`` — the latent the model must denoise at noise level ``sigma`` — and is sent the
denoised latent back; it ``return``s the final latent. Written this way, the same sampler runs inside a diffusers
pipeline's loop (one model call per ``step``), in a test against a toy denoiser, or in a dry run that only lists
the sigmas it will ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal

from nodeforge.nodes.models.diffusion.ksampling.noise import NoiseSampler
from nodeforge.nodes.models.diffusion.ksampling.spaces import NoiseSpace

Walk = Generator[tuple[Any, Any], Any, Any]
"""Yields ``(x, sigma)``, is sent ``denoised``, returns the final ``x``."""

NoiseKind = Literal["none", "step", "brownian"]


@dataclass(frozen=True)
class SamplerSpec:
    """A sampler and the noise it draws (none, a fresh per-step generator, or a Brownian tree)."""

    walk: Callable[[Any, Any, NoiseSampler, NoiseSpace], Walk]
    noise: NoiseKind = "none"


def to_d(x: Any, sigma: Any, denoised: Any) -> Any:
    """The Karras ODE derivative at ``x``."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: Any, sigma_to: Any, eta: float = 1.0) -> tuple[Any, Any]:
    """How far to step down (``sigma_down``) and how much noise to add back (``sigma_up``)."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - sigma_up ** 2) ** 0.5, sigma_up


def no_noise(sigma: Any, sigma_next: Any) -> Any:
    raise AssertionError("a deterministic sampler drew noise")


def drive(walk: Walk, denoise: Callable[[Any, Any], Any]) -> Any:
    """Run a walk to the end with ``denoise(x, sigma) -> denoised``; the final latent."""
    try:
        x, sigma = next(walk)
        while True:
            x, sigma = walk.send(denoise(x, sigma))
    except StopIteration as finished:
        return finished.value


def requested_sigmas(spec: SamplerSpec, sigmas: Any, space: NoiseSpace) -> list[Any]:
    """The sigmas a sampler will ask the model at, in order, found by a dry run on a one-element latent (every
    sampler here chooses them from the schedule alone)."""
    import torch

    asked: list[Any] = []

    def record(x: Any, sigma: Any) -> Any:
        asked.append(sigma)
        return torch.zeros_like(x)

    drive(spec.walk(torch.zeros(1), sigmas, lambda a, b: torch.zeros(1), space), record)
    return asked
