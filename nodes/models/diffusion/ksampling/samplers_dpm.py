"""ComfyUI's DPM-Solver++ samplers as walks (see ``walk``): dpmpp_2m, dpmpp_2s_ancestral, dpmpp_sde,
dpmpp_2m_sde (midpoint and heun) and dpmpp_3m_sde. The SDE ones work in half-log-SNR, which for flow models is
``log((1 - sigma) / sigma)``; their first sigma is nudged below 1 there, as in ComfyUI."""

from __future__ import annotations

from typing import Any

from nodeforge.nodes.models.diffusion.ksampling.noise import NoiseSampler
from nodeforge.nodes.models.diffusion.ksampling.spaces import NoiseSpace
from nodeforge.nodes.models.diffusion.ksampling.walk import Walk, ancestral_step, to_d


def _log_snr(space: NoiseSpace, sigma: Any) -> Any:
    return sigma.logit().neg() if space.flow else sigma.log().neg()


def _sigma_of(space: NoiseSpace, half_log_snr: Any) -> Any:
    return half_log_snr.neg().sigmoid() if space.flow else half_log_snr.neg().exp()


def _offset_first(space: NoiseSpace, sigmas: Any) -> Any:
    if len(sigmas) > 1 and space.flow and sigmas[0] >= 1:
        sigmas = sigmas.clone()
        sigmas[0] = space.percent_to_sigma(1e-4)
    return sigmas


def dpmpp_2m(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    old = None
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        t, t_next = sigmas[i].log().neg(), sigmas[i + 1].log().neg()
        h = t_next - t
        if old is None or sigmas[i + 1] == 0:
            x = (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * denoised
        else:
            r = (t - sigmas[i - 1].log().neg()) / h
            blended = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            x = (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * blended
        old = denoised
    return x


def dpmpp_2s_ancestral(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, eta: float = 1.0) -> Walk:
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if space.flow:
            x = yield from _dpmpp_2s_flow_step(x, sigmas[i], sigmas[i + 1], denoised, noise, eta)
            continue
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = sigmas[i].log().neg(), sigma_down.log().neg()
            h = t_next - t
            s = t + 0.5 * h
            x_2 = (s.neg().exp() / t.neg().exp()) * x - (-h * 0.5).expm1() * denoised
            denoised_2 = yield x_2, s.neg().exp()
            x = (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * 1.0 * sigma_up
    return x


def _dpmpp_2s_flow_step(x: Any, sigma: Any, sigma_next: Any, denoised: Any, noise: NoiseSampler,
                        eta: float) -> Walk:
    """One step of ComfyUI's rectified-flow DPM++(2S) ancestral sampler."""
    sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    alpha_next, alpha_down = 1 - sigma_next, 1 - sigma_down
    renoise = (sigma_next ** 2 - sigma_down ** 2 * alpha_next ** 2 / alpha_down ** 2) ** 0.5
    if sigma_next == 0:
        return x + to_d(x, sigma, denoised) * (sigma_down - sigma)
    if sigma == 1.0:
        sigma_s: Any = 0.9999
    else:
        t_i, t_down = ((1 - sigma) / sigma).log(), ((1 - sigma_down) / sigma_down).log()
        sigma_s = ((t_i + 0.5 * (t_down - t_i)).exp() + 1) ** -1
    ratio = sigma_s / sigma
    denoised_2 = yield ratio * x + (1 - ratio) * denoised, sigma.new_tensor(sigma_s) if sigma == 1.0 else sigma_s
    ratio = sigma_down / sigma
    x = ratio * x + (1 - ratio) * denoised_2
    if eta > 0:
        x = (alpha_next / alpha_down) * x + noise(sigma, sigma_next) * 1.0 * renoise
    return x


def dpmpp_sde(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, eta: float = 1.0,
              r: float = 0.5) -> Walk:
    if len(sigmas) <= 1:
        return x
    sigmas = _offset_first(space, sigmas)
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s, lambda_t = _log_snr(space, sigmas[i]), _log_snr(space, sigmas[i + 1])
        h = lambda_t - lambda_s
        lambda_s_1 = lambda_s + r * h
        fac = 1 / (2 * r)
        sigma_s_1 = _sigma_of(space, lambda_s_1)
        alpha_s = sigmas[i] * lambda_s.exp()
        alpha_s_1 = sigma_s_1 * lambda_s_1.exp()
        alpha_t = sigmas[i + 1] * lambda_t.exp()
        sd, su = ancestral_step(lambda_s.neg().exp(), lambda_s_1.neg().exp(), eta)
        h_ = sd.log().neg() - lambda_s
        x_2 = (alpha_s_1 / alpha_s) * (-h_).exp() * x - alpha_s_1 * (-h_).expm1() * denoised
        if eta > 0:
            x_2 = x_2 + alpha_s_1 * noise(sigmas[i], sigma_s_1) * 1.0 * su
        denoised_2 = yield x_2, sigma_s_1
        sd, su = ancestral_step(lambda_s.neg().exp(), lambda_t.neg().exp(), eta)
        h_ = sd.log().neg() - lambda_s
        blended = (1 - fac) * denoised + fac * denoised_2
        x = (alpha_t / alpha_s) * (-h_).exp() * x - alpha_t * (-h_).expm1() * blended
        if eta > 0:
            x = x + alpha_t * noise(sigmas[i], sigmas[i + 1]) * 1.0 * su
    return x


def _sde_first_order(space: NoiseSpace, sigma: Any, sigma_next: Any, x: Any, denoised: Any,
                     eta: float) -> tuple[Any, Any, Any, Any]:
    """The first-order part of a DPM-Solver++ SDE step: the new x, the step h in half-log-SNR, h * (eta + 1) and
    the alpha at ``sigma_next``."""
    lambda_s, lambda_t = _log_snr(space, sigma), _log_snr(space, sigma_next)
    h = lambda_t - lambda_s
    h_eta = h * (eta + 1)
    alpha_t = sigma_next * lambda_t.exp()
    return sigma_next / sigma * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised, h, h_eta, alpha_t


def _sde_noise(x: Any, noise: NoiseSampler, sigma: Any, sigma_next: Any, h: Any, eta: float) -> Any:
    """The Brownian noise an SDE step adds."""
    if eta > 0:
        x = x + noise(sigma, sigma_next) * sigma_next * (-2 * h * eta).expm1().neg().sqrt() * 1.0
    return x


def _dpmpp_2m_sde(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, solver: str,
                  eta: float = 1.0) -> Walk:
    if len(sigmas) <= 1:
        return x
    sigmas = _offset_first(space, sigmas)
    old, h, h_last = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x, h, h_eta, alpha_t = _sde_first_order(space, sigmas[i], sigmas[i + 1], x, denoised, eta)
            if old is not None:
                r = h_last / h
                if solver == "heun":
                    x = x + alpha_t * ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / r) * (denoised - old)
                else:
                    x = x + 0.5 * alpha_t * (-h_eta).expm1().neg() * (1 / r) * (denoised - old)
            x = _sde_noise(x, noise, sigmas[i], sigmas[i + 1], h, eta)
        old, h_last = denoised, h
    return x


def dpmpp_2m_sde(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    return (yield from _dpmpp_2m_sde(x, sigmas, noise, space, "midpoint"))


def dpmpp_2m_sde_heun(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace) -> Walk:
    return (yield from _dpmpp_2m_sde(x, sigmas, noise, space, "heun"))


def dpmpp_3m_sde(x: Any, sigmas: Any, noise: NoiseSampler, space: NoiseSpace, eta: float = 1.0) -> Walk:
    if len(sigmas) <= 1:
        return x
    sigmas = _offset_first(space, sigmas)
    denoised_1: Any = None
    denoised_2: Any = None
    h: Any = None
    h_1: Any = None
    h_2: Any = None
    for i in range(len(sigmas) - 1):
        denoised = yield x, sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x, h, h_eta, alpha_t = _sde_first_order(space, sigmas[i], sigmas[i + 1], x, denoised, eta)
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + (alpha_t * phi_2) * d1 - (alpha_t * phi_3) * d2
            elif h_1 is not None:
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + (alpha_t * phi_2) * ((denoised - denoised_1) / (h_1 / h))
            x = _sde_noise(x, noise, sigmas[i], sigmas[i + 1], h, eta)
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x
