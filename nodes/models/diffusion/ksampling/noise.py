"""The random draws of ComfyUI's sampling, so a seed gives the same noise.

The start noise is one ``torch.randn`` of the whole batch from a CPU generator seeded with the seed (image i of a
batch is ComfyUI's image i). Ancestral and other stochastic samplers draw their per-step noise from a *fresh*
generator seeded with the same seed, on the latent's device, one draw of the latent's shape per step. SDE samplers
draw Brownian increments from a ``torchsde`` Brownian tree between the smallest and largest sigma, seeded with
the seed and kept on the CPU. ``shape`` and ``pack`` let packed latents (Flux's 2x2 patches) draw in the spatial
shape ComfyUI draws in and be packed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NoiseSampler = Callable[[Any, Any], Any]
"""``noise(sigma, sigma_next) -> tensor`` of the latent's shape."""

Pack = Callable[[Any], Any]


def start_noise(shape: tuple[int, ...], seed: int) -> Any:
    """ComfyUI's ``prepare_noise``: float32 on the CPU, the whole batch in one draw."""
    import torch

    return torch.randn(shape, dtype=torch.float32, generator=torch.manual_seed(seed), device="cpu")


def step_noise(x: Any, seed: int, *, shape: tuple[int, ...] | None = None, pack: Pack | None = None) -> NoiseSampler:
    """The per-step noise of ancestral samplers: a generator on the latent's device, seeded anew."""
    import torch

    generator = torch.Generator(device=x.device)
    generator.manual_seed(seed)
    size = shape or tuple(x.shape)

    def draw(sigma: Any, sigma_next: Any) -> Any:
        noise = torch.randn(size, dtype=x.dtype, layout=x.layout, device=x.device, generator=generator)
        return pack(noise) if pack is not None else noise

    return draw


def brownian_noise(x: Any, sigmas: Any, seed: int, *, shape: tuple[int, ...] | None = None,
                   pack: Pack | None = None) -> NoiseSampler:
    """The Brownian-tree noise of SDE samplers over [smallest sigma > 0, largest sigma], on the CPU, normalised to
    unit variance per step (``W(t1) - W(t0)`` over ``sqrt(|t1 - t0|)``)."""
    import warnings

    import torch
    import torchsde

    positive = sigmas[sigmas > 0]
    low, high = torch.as_tensor(positive.min()), torch.as_tensor(sigmas.max())
    sign = 1 if low < high else -1
    t0, t1 = (low, high) if sign == 1 else (high, low)
    w0 = torch.zeros(shape or tuple(x.shape), dtype=x.dtype).cpu()
    tree = torchsde.BrownianTree(t0.detach().cpu(), w0, t1.detach().cpu(), entropy=seed)

    def draw(sigma: Any, sigma_next: Any) -> Any:
        a, b = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        order = 1 if a < b else -1
        lo, hi = (a, b) if order == 1 else (b, a)
        with warnings.catch_warnings():  # torchsde warns when a float32 sigma rounds past the tree's float ends
            warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
            increment = tree(lo.detach().cpu().float(), hi.detach().cpu().float())
        increment = increment.to(device=x.device, dtype=lo.dtype) * (sign * order)
        noise = increment / (b - a).abs().sqrt()
        return pack(noise) if pack is not None else noise

    return draw
