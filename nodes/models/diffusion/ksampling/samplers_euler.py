"""ComfyUI's Euler-family and linear multistep samplers as walks (see ``walk``): euler, euler_ancestral, heun,
heunpp2, dpm_2, dpm_2_ancestral, lms, ipndm, ipndm_v, ddpm and lcm. Flow models (``space.flow``) take ComfyUI's
rectified-flow variants of the ancestral ones."""

from __future__ import annotations

from typing import Any

from nodeforge.nodes.models.diffusion.ksampling.noise import NoiseSampler
from nodeforge.nodes.models.diffusion.ksampling.spaces import NoiseSpace
from nodeforge.nodes.models.diffusion.ksampling.walk import Walk, ancestral_step, to_d


def euler(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


def _flow_down(sigma: Any, sigma_next: Any, eta: float) -> tuple[Any, Any, Any, Any]:
    """sigma_down, the re-noise coefficient and the two alphas of a rectified-flow ancestral step."""
    sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    alpha_next, alpha_down = 1 - sigma_next, 1 - sigma_down
    renoise = (sigma_next ** 2 - sigma_down ** 2 * alpha_next ** 2 / alpha_down ** 2) ** 0.5
    return sigma_down, renoise, alpha_next, alpha_down


def euler_ancestral(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, eta: float = 1.0) -> Walk:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if space.flow:
            if sigmas[i + 1] == 0:
                x = denoised
                continue
            sigma_down, renoise, alpha_next, alpha_down = _flow_down(sigmas[i], sigmas[i + 1], eta)
            ratio = sigma_down / sigmas[i]
            x = ratio * x + (1 - ratio) * denoised
            if eta > 0:
                x = (alpha_next / alpha_down) * x + noise(sigmas[i], sigmas[i + 1]) * 1.0 * renoise
            continue
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if sigma_down == 0:
            x = denoised
        else:
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigma_down - sigmas[i]) + noise(sigmas[i], sigmas[i + 1]) * 1.0 * sigma_up
    return x


def heun(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        d = to_d(x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = yield x_2, sigmas[i + 1]
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            x = x + (d + d_2) / 2 * dt
    return x


def heunpp2(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        d = to_d(x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == end:
            x = x + d * dt
        elif sigmas[i + 2] == end:
            x_2 = x + d * dt
            denoised_2 = yield x_2, sigmas[i + 1]
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            w2 = sigmas[i + 1] / (2 * sigmas[0])
            x = x + (d * (1 - w2) + d_2 * w2) * dt
        else:
            x_2 = x + d * dt
            denoised_2 = yield x_2, sigmas[i + 1]
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            x_3 = x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1])
            denoised_3 = yield x_3, sigmas[i + 2]
            d_3 = to_d(x_3, sigmas[i + 2], denoised_3)
            w = 3 * sigmas[0]
            w2, w3 = sigmas[i + 1] / w, sigmas[i + 2] / w
            x = x + ((1 - w2 - w3) * d + w2 * d_2 + w3 * d_3) * dt
    return x


def dpm_2(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        d = to_d(x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = yield x_2, sigma_mid
            x = x + to_d(x_2, sigma_mid, denoised_2) * (sigmas[i + 1] - sigmas[i])
    return x


def dpm_2_ancestral(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, eta: float = 1.0) -> Walk:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if space.flow:
            sigma_down, renoise, alpha_next, alpha_down = _flow_down(sigmas[i], sigmas[i + 1], eta)
            sigma_up = None
        else:
            sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
            continue
        sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
        x_2 = x + d * (sigma_mid - sigmas[i])
        denoised_2 = yield x_2, sigma_mid
        x = x + to_d(x_2, sigma_mid, denoised_2) * (sigma_down - sigmas[i])
        if sigma_up is None:
            x = (alpha_next / alpha_down) * x + noise(sigmas[i], sigmas[i + 1]) * 1.0 * renoise
        else:
            x = x + noise(sigmas[i], sigmas[i + 1]) * 1.0 * sigma_up
    return x


def _lms_coefficient(order: int, t: Any, i: int, j: int) -> float:
    from scipy import integrate

    def basis(tau: float) -> float:
        product = 1.0
        for k in range(order):
            if j != k:
                product *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return product

    return float(integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0])


def lms(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, order: int = 4) -> Walk:
    points = sigmas.detach().cpu().numpy()
    history: list[Any] = []
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        history.append(to_d(x, sigmas[i], denoised))
        if len(history) > order:
            history.pop(0)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            current = min(i + 1, order)
            coefficients = [_lms_coefficient(current, points, i, j) for j in range(current)]
            x = x + sum(c * d for c, d in zip(coefficients, reversed(history), strict=False))
    return x


def _adams(x: Any, sigmas: Any, max_order: int, variable: bool) -> Walk:
    """The improved PNDM walk: Adams-Bashforth steps on the ODE derivative with up to ``max_order`` - 1 past
    derivatives, fixed weights (ipndm) or weights for uneven steps (``variable``: ipndm_v)."""
    history: list[Any] = []
    for i in range(len(sigmas) - 1):
        t, t_next = sigmas[i], sigmas[i + 1]
        denoised = yield x, t
        d = (x - denoised) / t
        order = min(max_order, i + 1)
        if t_next == 0:
            x_next = denoised
        elif order == 1:
            x_next = x + (t_next - t) * d
        elif not variable:
            x_next = x + (t_next - t) * _ipndm_sum(order, d, history)
        else:
            steps = [t_next - t, *(sigmas[i - k] - sigmas[i - k - 1] for k in range(order - 1))]
            weights = _ipndm_v_coefficients(order, steps + [None] * (4 - len(steps)))
            total = weights[0] * d
            for k, weight in enumerate(weights[1:], start=1):
                total = total + weight * history[-k]
            x_next = x + (t_next - t) * total
        history = [*history, d][-(max_order - 1):]
        x = x_next
    return x


def _ipndm_sum(order: int, d: Any, history: list[Any]) -> Any:
    if order == 2:
        return (3 * d - history[-1]) / 2
    if order == 3:
        return (23 * d - 16 * history[-1] + 5 * history[-2]) / 12
    return (55 * d - 59 * history[-1] + 37 * history[-2] - 9 * history[-3]) / 24


def ipndm(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, max_order: int = 4) -> Walk:
    return (yield from _adams(x, sigmas, max_order, variable=False))


def _ipndm_v_coefficients(order: int, h: list[Any]) -> list[Any]:
    """The variable-step Adams-Bashforth weights of ipndm_v; ``h`` = [h_n, h_n-1, h_n-2, h_n-3]."""
    if order == 2:
        return [(2 + (h[0] / h[1])) / 2, -(h[0] / h[1]) / 2]
    temp1 = (1 - h[0] / (3 * (h[0] + h[1])) * (h[0] * (h[0] + h[1])) / (h[1] * (h[1] + h[2]))) / 2
    if order == 3:
        return [(2 + (h[0] / h[1])) / 2 + temp1, -(h[0] / h[1]) / 2 - (1 + h[1] / h[2]) * temp1,
                temp1 * h[1] / h[2]]
    ratio = h[1] * (h[1] + h[2]) / (h[2] * (h[2] + h[3]))
    temp2 = ((1 - h[0] / (3 * (h[0] + h[1]))) / 2 + (1 - h[0] / (2 * (h[0] + h[1]))) * h[0]
             / (6 * (h[0] + h[1] + h[2]))) * (h[0] * (h[0] + h[1]) * (h[0] + h[1] + h[2])) \
        / (h[1] * (h[1] + h[2]) * (h[1] + h[2] + h[3]))
    return [(2 + (h[0] / h[1])) / 2 + temp1 + temp2,
            -(h[0] / h[1]) / 2 - (1 + h[1] / h[2]) * temp1 - (1 + (h[1] / h[2]) + ratio) * temp2,
            temp1 * h[1] / h[2] + ((h[1] / h[2]) + ratio * (1 + h[2] / h[3])) * temp2,
            -temp2 * ratio * h[1] / h[2]]


def ipndm_v(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, max_order: int = 4) -> Walk:
    return (yield from _adams(x, sigmas, max_order, variable=True))


def ddpm(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    import torch

    for i in range(len(sigmas) - 1):
        sigma, sigma_prev = sigmas[i], sigmas[i + 1]
        denoised = yield x, sigma
        eps = (x - denoised) / sigma
        scaled = x / torch.sqrt(1.0 + sigma ** 2.0)
        alpha_cumprod = 1 / ((sigma * sigma) + 1)
        alpha_cumprod_prev = 1 / ((sigma_prev * sigma_prev) + 1)
        alpha = alpha_cumprod / alpha_cumprod_prev
        mu = (1.0 / alpha).sqrt() * (scaled - (1 - alpha) * eps / (1 - alpha_cumprod).sqrt())
        if sigma_prev > 0:
            mu += ((1 - alpha) * (1. - alpha_cumprod_prev) / (1. - alpha_cumprod)).sqrt() * noise(sigma, sigma_prev)
            mu *= torch.sqrt(1.0 + sigma_prev ** 2.0)
        x = mu
    return x


def lcm(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    for i in range(len(sigmas) - 1):
        x = yield x, sigmas[i]
        if sigmas[i + 1] > 0:
            x = space.noise_scaling(sigmas[i + 1], noise(sigmas[i], sigmas[i + 1]), x)
    return x
