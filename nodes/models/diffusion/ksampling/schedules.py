"""ComfyUI's sigma schedules: the sigmas a sampler walks from noise to the picture, for a number of steps.

``sampling_sigmas`` is what ComfyUI's KSampler does with a schedule: samplers that discard the penultimate sigma
get one more step, ``denoise`` below 1 takes the tail of a longer schedule, ``start``/``end`` cut it
(KSamplerAdvanced). ``ays`` (Align Your Steps) and ``sd_turbo`` are the sigmas of those ComfyUI scheduler nodes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from nodeforge.nodes.models.diffusion.ksampling.spaces import NoiseSpace

AYS_LEVELS = {
    "sd": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
           0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "sdxl": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
             0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
}
"""Align Your Steps' ten-step noise levels (NVIDIA's paper, as ComfyUI ships them) for SD 1.x and SDXL."""

DISCARD_PENULTIMATE = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})


def _append_zero(sigmas: Any) -> Any:
    import torch

    return torch.cat([sigmas, sigmas.new_zeros([1])])


def _floats(values: list[float]) -> Any:
    import torch

    return torch.FloatTensor(values)


def normal(space: NoiseSpace, steps: int, sgm: bool = False) -> Any:
    import torch

    start, end = space.timestep(space.sigma_max), space.timestep(space.sigma_min)
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(space.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)
    sigmas = [float(space.sigma(t)) for t in timesteps]
    return _floats(sigmas + [0.0] if append_zero else sigmas)


def simple(space: NoiseSpace, steps: int) -> Any:
    table, stride = space.table, len(space.table) / steps
    return _floats([float(table[-(1 + int(x * stride))]) for x in range(steps)] + [0.0])


def ddim_uniform(space: NoiseSpace, steps: int) -> Any:
    table, x = space.table, 1
    if math.isclose(float(table[x]), 0, abs_tol=0.00001):
        steps += 1
        sigmas: list[float] = []
    else:
        sigmas = [0.0]
    stride = max(len(table) // steps, 1)
    while x < len(table):
        sigmas.append(float(table[x]))
        x += stride
    return _floats(sigmas[::-1])


def beta(space: NoiseSpace, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> Any:
    import numpy
    from scipy import stats

    last_index = len(space.table) - 1
    points = numpy.rint(stats.beta.ppf(1 - numpy.linspace(0, 1, steps, endpoint=False), alpha, beta_) * last_index)
    sigmas, last = [], -1.0
    for t in points:
        if t != last:
            sigmas.append(float(space.table[int(t)]))
        last = t
    return _floats(sigmas + [0.0])


def linear_quadratic(space: NoiseSpace, steps: int, threshold: float = 0.025) -> Any:
    if steps == 1:
        schedule = [1.0, 0.0]
    else:
        linear_steps = steps // 2
        linear = [i * threshold / linear_steps for i in range(linear_steps)]
        step_diff = linear_steps - threshold * steps
        quadratic_steps = steps - linear_steps
        quadratic_coef = step_diff / (linear_steps * quadratic_steps ** 2)
        linear_coef = threshold / linear_steps - 2 * step_diff / (quadratic_steps ** 2)
        const = quadratic_coef * (linear_steps ** 2)
        quadratic = [quadratic_coef * (i ** 2) + linear_coef * i + const for i in range(linear_steps, steps)]
        schedule = [1.0 - x for x in linear + quadratic + [1.0]]
    return _floats(schedule) * space.sigma_max


def karras(space: NoiseSpace, steps: int, rho: float = 7.0) -> Any:
    import torch

    sigma_min, sigma_max = float(space.sigma_min), float(space.sigma_max)
    ramp = torch.linspace(0, 1, steps)
    min_inv, max_inv = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((max_inv + ramp * (min_inv - max_inv)) ** rho)


def exponential(space: NoiseSpace, steps: int) -> Any:
    import torch

    sigma_min, sigma_max = float(space.sigma_min), float(space.sigma_max)
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp())


def kl_optimal(space: NoiseSpace, steps: int) -> Any:
    import torch

    sigma_min, sigma_max = float(space.sigma_min), float(space.sigma_max)
    ramp = torch.arange(steps, dtype=torch.float).div_(steps - 1)
    sigmas = ramp.new_zeros(steps + 1)
    sigmas[:-1] = (ramp * math.atan(sigma_min) + (1 - ramp) * math.atan(sigma_max)).tan_()
    return sigmas


SCHEDULES: dict[str, Callable[[NoiseSpace, int], Any]] = {
    "simple": simple, "sgm_uniform": lambda space, steps: normal(space, steps, sgm=True), "karras": karras,
    "exponential": exponential, "ddim_uniform": ddim_uniform, "beta": beta, "normal": normal,
    "linear_quadratic": linear_quadratic, "kl_optimal": kl_optimal}
"""ComfyUI's KSampler schedulers, in its order."""

NODE_SCHEDULES = ("ays", "sd_turbo")
"""Schedules ComfyUI makes with scheduler nodes (AlignYourStepsScheduler, SDTurboScheduler)."""

SCHEDULE_NAMES = (*SCHEDULES, *NODE_SCHEDULES)


def align_your_steps(family: str, steps: int, denoise: float = 1.0) -> Any:
    """AlignYourStepsScheduler's sigmas for SD 1.x (``sd``) or SDXL: the ten-step levels, log-linearly
    interpolated to ``steps``, the tail for ``denoise``."""
    import numpy

    total = steps if denoise >= 1.0 else round(steps * denoise)
    levels = numpy.array(AYS_LEVELS["sdxl" if family == "sdxl" else "sd"])
    if steps + 1 != len(levels):
        xs, ys = numpy.linspace(0, 1, len(levels)), numpy.log(levels[::-1])
        levels = numpy.exp(numpy.interp(numpy.linspace(0, 1, steps + 1), xs, ys))[::-1].copy()
    tail = levels[-(total + 1):]
    tail[-1] = 0
    return _floats(list(tail))


def sd_turbo(space: NoiseSpace, steps: int, denoise: float = 1.0) -> Any:
    """SDTurboScheduler's sigmas: every hundredth timestep from 999 down, starting later for ``denoise`` < 1."""
    import torch

    start = 10 - int(10 * denoise)
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start:start + steps]
    return _append_zero(space.sigma(timesteps))


def schedule_sigmas(space: NoiseSpace, schedule: str, steps: int) -> Any:
    return SCHEDULES[schedule](space, steps)


def sampling_sigmas(space: NoiseSpace, schedule: str, steps: int, *, sampler: str = "euler", denoise: float = 1.0,
                    family: str = "sd", start: int | None = None, end: int | None = None) -> Any:
    """The sigmas ComfyUI's KSampler (and KSamplerAdvanced's ``start``/``end`` steps) samples for these settings."""
    import torch

    if schedule in NODE_SCHEDULES:
        sigmas = align_your_steps(family, steps, denoise) if schedule == "ays" else sd_turbo(space, steps, denoise)
    else:
        def full(count: int) -> Any:
            if sampler in DISCARD_PENULTIMATE:
                made = schedule_sigmas(space, schedule, count + 1)
                return torch.cat([made[:-2], made[-1:]])
            return schedule_sigmas(space, schedule, count)

        if denoise > 0.9999:
            sigmas = full(steps)
        elif denoise <= 0.0:
            sigmas = torch.FloatTensor([])
        else:
            sigmas = full(int(steps / denoise))[-(steps + 1):]
    if end is not None and end < len(sigmas) - 1:
        sigmas = sigmas[:end + 1].clone()
    if start is not None:
        sigmas = sigmas[start:] if start < len(sigmas) - 1 else sigmas[:0]
    return sigmas
