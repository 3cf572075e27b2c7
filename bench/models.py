"""Image models through the engine against calling the libraries directly, model residency, and peak memory.

- ``image.generate`` on tiny/sd (128x128, 4 steps, guidance 5) as a one-node graph (no result cache, the model
  resident) against ``StableDiffusionPipeline.__call__`` with the same inputs; the ratio of medians is the engine's
  cost (target <= 1.05).
- ``image.controlnet`` + ``image.generate`` on tiny/sd with tiny/controlnet (same settings, a 128x128 control
  picture) as a graph against ``StableDiffusionControlNetPipeline.__call__`` (target <= 1.05).
- ``image.upscale`` with the real realesrgan-x4plus weights on a 64x64 picture against the same network's forward.
- A first run in a fresh executor (resolving, loading the weights) against the second (the model resident).
- Peak resident memory of the process.

The graph's image is checked to be bit-identical to the direct call's. Both the median and the best of the rounds
are printed: on a machine shared with other work the best round is the steadier estimate of the engine's own cost.

Run: ``.venv/bin/python bench/models.py`` (offline; about a minute on two idle CPU cores). ``--rounds N`` changes
the number of interleaved rounds (default 7), ``--threads N`` torch's thread count (default 1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session

GENERATE = {"prompt": "a red fox in the snow", "negative_prompt": "blurry", "model": "tiny/sd", "width": 128,
            "height": 128, "steps": 4, "guidance_scale": 5.0, "seed": 1}


def seconds(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


Timing = tuple[list[float], list[float]]


def paired(direct: Callable[[], Any], engine: Callable[[], Any], rounds: int) -> Timing:
    """Times of interleaved rounds (so drifting machine load hits both sides alike), after one warm-up each."""
    direct()
    engine()
    direct_times, engine_times = [], []
    for _ in range(rounds):
        direct_times.append(seconds(direct))
        engine_times.append(seconds(engine))
    return direct_times, engine_times


def executor_for(data_dir: Path) -> Session:
    return Session(GraphEnv(Registry.discover(), GraphLibrary([])), None, workers=2, devices=["cpu"],
                    data_dir=data_dir)


def graph_run(executor: Session, document: Any, inputs: dict[str, Any] | None = None) -> Callable[[], Any]:
    def run() -> Any:
        result = executor.run(document, inputs)
        if result.record.status != "succeeded":
            raise RuntimeError(result.record.error)
        return result.values["out"]

    return run


def bench_generate(executor: Session, data_dir: Path, rounds: int) -> Timing:
    import torch
    from diffusers import StableDiffusionPipeline

    from nodeforge.nodes.models import build_resolver

    pipe = StableDiffusionPipeline.from_pretrained(str(build_resolver().resolve("tiny/sd", data_dir).path),
                                                   safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    settings = GENERATE

    def direct() -> Any:
        return pipe(settings["prompt"], negative_prompt=settings["negative_prompt"], width=settings["width"],
                    height=settings["height"], num_inference_steps=settings["steps"],
                    guidance_scale=settings["guidance_scale"],
                    generator=torch.Generator("cpu").manual_seed(settings["seed"]), output_type="pt").images

    document = parse_document({"nodes": {"n": {"type": "image.generate", "inputs": settings}},
                               "outputs": {"out": {"from": "n.image"}}})
    engine = graph_run(executor, document)
    assert torch.equal(direct(), engine().tensor), "the graph's image differs from the direct call's"
    return paired(direct, engine, rounds)


def bench_controlnet(executor: Session, data_dir: Path, rounds: int) -> Timing:
    import torch
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    from nodeforge.engine.values import Image
    from nodeforge.nodes.models import build_resolver

    resolver = build_resolver()
    controlnet = ControlNetModel.from_pretrained(str(resolver.resolve("tiny/controlnet", data_dir).path))
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        str(resolver.resolve("tiny/sd", data_dir).path), controlnet=controlnet, safety_checker=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    picture = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    settings = GENERATE

    def direct() -> Any:
        return pipe(settings["prompt"], image=picture, negative_prompt=settings["negative_prompt"],
                    width=settings["width"], height=settings["height"], num_inference_steps=settings["steps"],
                    guidance_scale=settings["guidance_scale"], controlnet_conditioning_scale=1.0,
                    control_guidance_start=0.0, control_guidance_end=1.0,
                    generator=torch.Generator("cpu").manual_seed(settings["seed"]), output_type="pt").images

    document = parse_document({"inputs": {"picture": {"type": "image"}}, "nodes": {
        "c": {"type": "image.controlnet", "inputs": {"image": {"input": "picture"}, "model": "tiny/controlnet"}},
        "n": {"type": "image.generate", "inputs": {**settings, "controls": [{"from": "c.control"}]}}},
        "outputs": {"out": {"from": "n.image"}}})
    engine = graph_run(executor, document, {"picture": Image(picture)})
    assert torch.equal(direct(), engine().tensor), "the graph's image differs from the direct call's"
    return paired(direct, engine, rounds)


def bench_upscale(executor: Session, data_dir: Path, rounds: int) -> Timing:
    import torch

    from nodeforge.engine.values import Image
    from nodeforge.nodes.models import build_resolver
    from nodeforge.nodes.models.upscalers.upscaling import load_upscaler

    net = load_upscaler(build_resolver().resolve("realesrgan-x4plus", data_dir).path, "realesrgan-x4plus", "cpu").net
    picture = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def direct() -> Any:
        with torch.inference_mode():
            return net(picture).clamp(0, 1)

    document = parse_document({"inputs": {"picture": {"type": "image"}},
                               "nodes": {"n": {"type": "image.upscale", "inputs": {
                                   "image": {"input": "picture"}, "model": "realesrgan-x4plus"}}},
                               "outputs": {"out": {"from": "n.image"}}})
    return paired(direct, graph_run(executor, document, {"picture": Image(picture)}), rounds)


def bench_residency(data_dir: Path) -> list[tuple[str, float, float]]:
    """First run (resolve, load) and second run (model resident) in a fresh executor, per model."""
    import torch

    from nodeforge.engine.values import Image

    rows = []
    picture = Image(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    cases = (("image.generate tiny/sd", {"type": "image.generate", "inputs": GENERATE}, None),
             ("image.upscale realesrgan-x4plus", {"type": "image.upscale", "inputs": {
                 "image": {"input": "picture"}, "model": "realesrgan-x4plus"}}, {"picture": picture}),
             ("image.caption tiny/blip", {"type": "image.caption", "inputs": {
                 "image": {"input": "picture"}, "model": "tiny/blip"}}, {"picture": picture}))
    for label, node, inputs in cases:
        executor = executor_for(data_dir)
        declared = {"picture": {"type": "image"}} if inputs else {}
        output = "text" if node["type"] == "image.caption" else "image"
        document = parse_document({"inputs": declared, "nodes": {"n": node},
                                   "outputs": {"out": {"from": f"n.{output}"}}})
        run = graph_run(executor, document, inputs)
        first = seconds(run)
        second = seconds(run)
        assert executor.models.loads == 1, "the second run loaded the model again"
        rows.append((label, first, second))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps timings steady on a busy "
                                                                "machine; see pitfall P1)")
    args = parser.parse_args()
    # Through the environment, before torch loads: torch.set_num_threads would hold for this thread only, and the
    # engine runs nodes on worker threads, which would then race the direct calls with more threads.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        executor = executor_for(data_dir)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f}")
        print(f"engine overhead, {args.rounds} interleaved rounds{'':<9}{'direct':>10}{'engine':>10}{'ratio':>8}")
        for label, bench in (("image.generate tiny/sd 128x128, 4 steps, CFG", bench_generate),
                             ("image.controlnet + generate, tiny/controlnet", bench_controlnet),
                             ("image.upscale realesrgan-x4plus 64 -> 256", bench_upscale)):
            direct, engine = bench(executor, data_dir, args.rounds)
            for kind, pick in (("median", statistics.median), ("best", min)):
                ratio = pick(engine) / pick(direct)
                verdict = "ok" if ratio <= 1.05 else "over 1.05"
                print(f"  {label + ', ' + kind:<54}{pick(direct):>9.3f}s{pick(engine):>9.3f}s{ratio:>8.3f}  "
                      f"{verdict}")
        print(f"\n{'first run (load) vs second run (model resident)':<56}{'first':>10}{'second':>10}")
        for label, first, second in bench_residency(data_dir):
            print(f"  {label:<54}{first:>9.3f}s{second:>9.3f}s")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
