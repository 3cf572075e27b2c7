"""Reference tensors from ComfyUI's own samplers and schedulers on a toy denoiser (no real model), for nodeforge's
sampler parity tests (issue 25). Runs with ComfyUI's venv, not the project's:

    /path/to/comfy-venv/bin/python bench/comfy_reference.py --comfy /path/to/ComfyUI \
        --out tests/data/comfy_sampling/reference.safetensors

It imports ComfyUI's modules from the ``--comfy`` checkout and drives them exactly as ComfyUI's ``KSampler`` does:
``comfy.samplers.KSampler(...).sigmas`` for the sigmas (``calculate_sigmas``, the extra step and dropped penultimate
sigma of ``DISCARD_PENULTIMATE_SIGMA_SAMPLERS``, the ``denoise`` rule ``sigmas[-(steps + 1):]`` of
``int(steps / denoise)`` steps), ``comfy.samplers.sampler_object(name).sample(...)`` (``KSAMPLER.sample``: noise
scaling, the k-diffusion sampler, inverse noise scaling) for the latents, ``comfy.sample.prepare_noise`` for the
noise. The toy (rebuild it bit for bit; everything float32 on CPU, one torch thread):

- spaces (``comfy.model_base.model_sampling`` class combinations, a config object with only ``sampling_settings``):
  ``eps`` = ModelSamplingDiscrete + EPS, ``v`` = ModelSamplingDiscrete + V_PREDICTION (both: linear betas
  0.00085..0.012, 1000 steps), ``sd3`` = ModelSamplingDiscreteFlow + CONST (shift 3.0, multiplier 1000),
  ``flux`` = ModelSamplingFlux + CONST (shift 1.15);
- network: ``W = randn(C, C, generator=Generator().manual_seed(1234)) / C ** 0.5``;
  ``out = tanh(einsum("oc,bchw->bohw", W, ms.calculate_input(sigma, x))) * 0.8
  + 0.05 * (ms.timestep(sigma).float() / 1000).view(-1, 1, 1, 1)``; denoised = ``ms.calculate_denoised(sigma, out, x)``;
- latent (2, C, 4, 4), C = 4 (eps, v) or 16 (sd3, flux); noise = ``prepare_noise(latent, 42)``; extra_args
  ``{"seed": 42, "model_options": {}}``; img2img latent = ``randn(shape, generator=Generator().manual_seed(7))``.

The file's layout is described in tests/data/comfy_sampling/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import torch

STEPS = 6
SEED = 42
I2I_SEED = 7
I2I_DENOISE = 0.6
W_SEED = 1234
EXCLUDED = {"dpm_fast", "dpm_adaptive", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece",
            "er_sde", "deis"}
EXCLUDED_PREFIXES = ("res_multistep", "gradient_estimation")
SWEEP_SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m_sde")
I2I_SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m_sde")
CHANNELS = {"eps": 4, "v": 4, "sd3": 16, "flux": 16}

TOY_WORDS = (
    "W = torch.randn(C, C, generator=torch.Generator().manual_seed(1234)) / C ** 0.5 (float32); "
    "x_in = ms.calculate_input(sigma, x); t = ms.timestep(sigma).float() (shape (B,)); "
    "out = torch.tanh(torch.einsum('oc,bchw->bohw', W, x_in)) * 0.8 + 0.05 * (t / 1000.0).view(-1, 1, 1, 1); "
    "denoised = ms.calculate_denoised(sigma, out, x). Spaces: eps = ModelSamplingDiscrete+EPS, "
    "v = ModelSamplingDiscrete+V_PREDICTION (linear betas 0.00085..0.012, 1000 steps), "
    "sd3 = ModelSamplingDiscreteFlow+CONST (shift 3.0, multiplier 1000), flux = ModelSamplingFlux+CONST (shift 1.15). "
    "Latent (2, C, 4, 4), C=4 eps/v, C=16 sd3/flux; noise = comfy.sample.prepare_noise(latent, 42); "
    "extra_args {'seed': 42, 'model_options': {}}; t2i: zeros latent, denoise 1.0, 6 steps; "
    "i2i: latent = torch.randn(shape, generator=torch.Generator().manual_seed(7)), denoise 0.6, 6 steps. "
    "Sigmas from comfy.samplers.KSampler(...).sigmas, samples from sampler_object(name).sample(...). "
    "float32, CPU, torch.set_num_threads(1)."
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--comfy", type=Path, required=True, help="ComfyUI checkout (its source tree)")
    p.add_argument("--out", type=Path, required=True, help="safetensors file to write")
    p.add_argument("--commit", default="", help="ComfyUI commit (default: the checkout's .bench_commit or git HEAD)")
    return p.parse_args()


def comfy_commit(root: Path, given: str) -> str:
    if given:
        return given
    marker = root / ".bench_commit"
    if marker.is_file():
        return marker.read_text().strip()
    head = root / ".git" / "HEAD"
    if head.is_file():
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref_file = root / ".git" / ref[5:]
            return ref_file.read_text().strip() if ref_file.is_file() else ref
        return ref
    return "unknown"


def main() -> int:
    args = parse_args()
    torch.set_num_threads(1)
    # torchsde's BrownianInterval warns on float32 rounding of the interval ends, as it does inside ComfyUI
    warnings.filterwarnings("ignore", module="torchsde")
    sys.path.insert(0, str(args.comfy.resolve()))
    import comfy.cli_args  # noqa: I001 - ComfyUI's own modules, found through --comfy

    comfy.cli_args.args.cpu = True  # ComfyUI's --cpu: no GPU probing
    import comfy.model_sampling as cms
    import comfy.sample
    import comfy.samplers
    import comfy_extras.nodes_align_your_steps as ays
    import comfy_extras.nodes_custom_sampler as custom
    from safetensors.torch import save_file

    class Config:
        def __init__(self, sampling_settings: dict[str, Any]) -> None:
            self.sampling_settings = sampling_settings

    def make_space(space: str) -> Any:
        kind, pred, settings = {
            "eps": (cms.ModelSamplingDiscrete, cms.EPS, {}),
            "v": (cms.ModelSamplingDiscrete, cms.V_PREDICTION, {}),
            "sd3": (cms.ModelSamplingDiscreteFlow, cms.CONST, {"shift": 3.0, "multiplier": 1000}),
            "flux": (cms.ModelSamplingFlux, cms.CONST, {"shift": 1.15}),
        }[space]

        class ModelSampling(kind, pred):  # type: ignore[valid-type, misc]  # as comfy.model_base.model_sampling
            pass

        return ModelSampling(Config(settings))

    class Patcher:
        """What ComfyUI's samplers and KSampler read from a ModelPatcher."""

        def __init__(self, ms: Any) -> None:
            self.ms = ms

        def get_model_object(self, name: str) -> Any:
            if name != "model_sampling":
                raise KeyError(name)
            return self.ms

    class BaseModel:
        """Stands in for comfy.model_base.BaseModel (CFGGuider.inner_model): model_sampling and the toy network."""

        def __init__(self, ms: Any, channels: int) -> None:
            self.model_sampling = ms
            self.w = torch.randn(channels, channels, generator=torch.Generator().manual_seed(W_SEED)) / channels**0.5

        def apply_model(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            ms = self.model_sampling
            x_in = ms.calculate_input(sigma, x)
            t = ms.timestep(sigma).float()
            out = torch.tanh(torch.einsum("oc,bchw->bohw", self.w, x_in)) * 0.8 + 0.05 * (t / 1000.0).view(-1, 1, 1, 1)
            return ms.calculate_denoised(sigma, out, x)

    class ModelWrap:
        """Stands in for the CFGGuider that KSAMPLER.sample gets: called (x, sigma, model_options, seed) -> denoised."""

        def __init__(self, ms: Any, channels: int) -> None:
            self.inner_model = BaseModel(ms, channels)
            self.model_patcher = Patcher(ms)

        def __call__(self, x: torch.Tensor, sigma: torch.Tensor, model_options: dict[str, Any] | None = None,
                     seed: int | None = None) -> torch.Tensor:
            return self.inner_model.apply_model(x, sigma)

    def ksampler_sigmas(patcher: Patcher, sampler: str, scheduler: str, denoise: float) -> torch.Tensor:
        ks = comfy.samplers.KSampler(patcher, steps=STEPS, device="cpu", sampler=sampler, scheduler=scheduler,
                                     denoise=denoise)
        if ks.sampler != sampler or ks.scheduler != scheduler:
            raise ValueError(f"KSampler does not know {sampler}/{scheduler}")
        return ks.sigmas

    tensors: dict[str, torch.Tensor] = {}
    failed: dict[str, str] = {}
    cases: list[str] = []
    names = [s for s in comfy.samplers.SAMPLER_NAMES
             if s not in EXCLUDED and not s.endswith("_cfg_pp") and not s.startswith(EXCLUDED_PREFIXES)]
    schedulers = list(comfy.samplers.SCHEDULER_NAMES)

    def plan(space: str) -> list[tuple[str, str, str]]:
        todo: list[tuple[str, str, str]] = []
        for s in names:
            for sch in (("normal", "karras") if space == "eps" else ("normal",)):
                todo.append((s, sch, "t2i"))
        if space in ("eps", "flux"):
            for s in SWEEP_SAMPLERS:
                for sch in schedulers:
                    if (s, sch, "t2i") not in todo:
                        todo.append((s, sch, "t2i"))
        for s in I2I_SAMPLERS:
            todo.append((s, "normal", "i2i"))
        return todo

    for space, channels in CHANNELS.items():
        ms = make_space(space)
        wrap = ModelWrap(ms, channels)
        shape = (2, channels, 4, 4)
        empty = torch.zeros(shape)
        noise = comfy.sample.prepare_noise(empty, SEED)
        tensors[f"noise/{space}"] = noise.contiguous()
        i2i_latent = torch.randn(shape, generator=torch.Generator().manual_seed(I2I_SEED))
        tensors[f"latent/{space}/i2i"] = i2i_latent.contiguous()
        for sch in schedulers:
            tensors[f"sigmas/{space}/{sch}"] = comfy.samplers.calculate_sigmas(ms, sch, STEPS).float().contiguous()
        for sampler, sch, case in plan(space):
            key = f"{space}/{sampler}/{sch}/{case}"
            latent = i2i_latent if case == "i2i" else empty
            denoise = I2I_DENOISE if case == "i2i" else 1.0
            try:
                sigmas = ksampler_sigmas(wrap.model_patcher, sampler, sch, denoise)
                extra_args: dict[str, Any] = {"seed": SEED, "model_options": {}}
                out = comfy.samplers.sampler_object(sampler).sample(
                    wrap, sigmas, extra_args, None, noise.clone(), latent_image=latent.clone(), disable_pbar=True)
                out = out.to(torch.float32)
                if not torch.isfinite(out).all():
                    raise ValueError("non-finite output")
            except Exception as e:  # noqa: BLE001 - a sampler that cannot run on the toy is recorded and skipped
                failed[key] = f"{type(e).__name__}: {e}"
                traceback.print_exc(limit=2)
                continue
            tensors[f"out/{key}"] = out.contiguous()
            tensors[f"used_sigmas/{key}"] = sigmas.float().contiguous()
            cases.append(key)

    eps_patcher = Patcher(make_space("eps"))
    for model_type in ("SD1", "SDXL"):
        for steps in (6, 10):
            for denoise in (1.0, 0.6):
                sig = ays.AlignYourStepsScheduler.execute(model_type, steps, denoise).result[0]
                tensors[f"sigmas/eps/align_your_steps/{model_type}/{steps}/{denoise}"] = sig.float().contiguous()
    for steps in range(1, 5):
        (sig,) = custom.SDTurboScheduler().get_sigmas(eps_patcher, steps, 1.0)
        tensors[f"sigmas/eps/sd_turbo/{steps}"] = sig.float().contiguous()

    import comfyui_version

    discard = comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS

    metadata = {
        "comfyui_version": comfyui_version.__version__,
        "comfyui_commit": comfy_commit(args.comfy, args.commit),
        "torch_version": torch.__version__,
        "toy": TOY_WORDS,
        "steps": str(STEPS),
        "samplers": json.dumps(names),
        "schedulers": json.dumps(schedulers),
        "cases": json.dumps(cases),
        "failed": json.dumps(failed),
        "discard_penultimate_sigma_samplers": json.dumps(sorted(discard)),
        "licence": "Numbers generated by running ComfyUI (GPL-3.0); no ComfyUI code is contained.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=metadata)
    size = args.out.stat().st_size
    print(f"{len(cases)} cases, {len(failed)} failed, {len(tensors)} tensors, {size / 1e6:.2f} MB -> {args.out}")
    for key, err in failed.items():
        print(f"  failed {key}: {err}")
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
           and not k.startswith("sigmas/")]
    if bad:
        print(f"non-finite tensors: {bad}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
