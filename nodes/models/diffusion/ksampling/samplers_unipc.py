"""ComfyUI's UniPC samplers (``uni_pc`` = B(h) = h, ``uni_pc_bh2`` = B(h) = e^h - 1) as walks (see ``walk``):
multistep predictor-corrector of order up to 3 on the data prediction, in the variance-preserving scaling of the
latent, with the last sigma 0 replaced by 0.001 and the lower orders at the end, as ComfyUI runs it."""

from __future__ import annotations

from typing import Any

from nodeforge.nodes.models.diffusion.ksampling.noise import NoiseSampler
from nodeforge.nodes.models.diffusion.ksampling.spaces import NoiseSpace
from nodeforge.nodes.models.diffusion.ksampling.walk import Walk


def _log_mean(sigma: Any) -> Any:
    import torch

    return 0.5 * torch.log(1 / ((sigma * sigma) + 1))


def _alpha(sigma: Any) -> Any:
    return _log_mean(sigma).exp()


def _std(sigma: Any) -> Any:
    import torch

    return torch.sqrt(1. - torch.exp(2. * _log_mean(sigma)))


def _lambda(sigma: Any) -> Any:
    import torch

    log_mean = _log_mean(sigma)
    return log_mean - 0.5 * torch.log(1. - torch.exp(2. * log_mean))


def _data_prediction(x: Any, t: Any) -> Walk:
    """Ask the model at sigma ``t`` for the point ``x`` (VP-scaled); the predicted clean latent."""
    model_input = x * ((t ** 2 + 1.0) ** 0.5)
    denoised = yield model_input, t
    eps = (model_input - denoised) / t
    return (x - _std(t) * eps) / _alpha(t)


def _update(x: Any, models: list[Any], times: list[Any], t: Any, order: int, bh2: bool,
            use_corrector: bool) -> Walk:
    """One B(h) UniPC step to ``t``: the predictor from the past data predictions, then (``use_corrector``) one
    model call at the new point and the corrector. Returns (x, the new data prediction or None)."""
    import torch

    lambda_prev, lambda_t = _lambda(times[-1]), _lambda(t)
    model_prev = models[-1]
    sigma_prev, sigma_t = _std(times[-1]), _std(t)
    alpha_t = torch.exp(_log_mean(t))
    h = lambda_t - lambda_prev
    ratios, differences = [], []
    for i in range(1, order):
        ratio = (_lambda(times[-(i + 1)]) - lambda_prev) / h
        ratios.append(ratio)
        differences.append((models[-(i + 1)] - model_prev) / ratio)
    ratios.append(1.)
    rks = torch.tensor(ratios, device=x.device)
    hh = -h
    h_phi_1 = torch.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    factorial = 1
    b_h = torch.expm1(hh) if bh2 else hh
    rows, b = [], []
    for i in range(1, order + 1):
        rows.append(torch.pow(rks, i - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    matrix, rhs = torch.stack(rows), torch.tensor(b, device=x.device)
    stacked = torch.stack(differences, dim=1) if differences else None
    x_base = (sigma_t / sigma_prev) * x - (alpha_t * h_phi_1) * model_prev
    predicted: Any = 0
    if stacked is not None:
        rhos_p = torch.tensor([0.5], device=x.device) if order == 2 else torch.linalg.solve(matrix[:-1, :-1], rhs[:-1])
        predicted = torch.tensordot(stacked, rhos_p, dims=([1], [0]))
    x_t = x_base - (alpha_t * b_h) * predicted
    if not use_corrector:
        return x_t, None
    rhos_c = torch.tensor([0.5], device=x.device) if order == 1 else torch.linalg.solve(matrix, rhs)
    model_t = yield from _data_prediction(x_t, t)
    corrected: Any = torch.tensordot(stacked, rhos_c[:-1], dims=([1], [0])) if stacked is not None else 0
    return x_base - (alpha_t * b_h) * (corrected + rhos_c[-1] * (model_t - model_prev)), model_t


def _uni_pc(x: Any, sigmas: Any, space: NoiseSpace, bh2: bool) -> Walk:
    import torch

    times = sigmas.clone()
    if times[-1] == 0:
        times[-1] = 0.001
    x = x / torch.sqrt(1.0 + times[0] ** 2.0)
    order = min(3, len(times) - 2)
    steps = len(times) - 1
    models: list[Any] = []
    past: list[Any] = []
    for index in range(steps):
        if index == 0:
            models, past = [(yield from _data_prediction(x, times[0]))], [times[0]]
        elif index < order:
            x, model_x = yield from _update(x, models, past, times[index], index, bh2, True)
            if model_x is None:
                model_x = yield from _data_prediction(x, times[index])
            models.append(model_x)
            past.append(times[index])
        else:
            for step in range(index, index + 1 + (1 if index == steps - 1 else 0)):
                x, model_x = yield from _update(x, models, past, times[step], min(order, steps + 1 - step), bh2,
                                                step != steps)
                models, past = [*models[1:order], models[-1]], [*past[1:order], times[step]]
                if step < steps:
                    models[-1] = model_x if model_x is not None else (yield from _data_prediction(x, times[step]))
    x = x / _alpha(times[-1])
    return space.inverse_noise_scaling(times[-1], x) if sigmas[-1] == 0 else x


def uni_pc(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    return (yield from _uni_pc(x, sigmas, space, bh2=False))


def uni_pc_bh2(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    return (yield from _uni_pc(x, sigmas, space, bh2=True))
