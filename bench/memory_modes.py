"""Memory modes measured: for each --memory-mode, a fresh process loads a diffusion model on one device, makes
pictures, and reports the peak memory and the seconds per picture (the first, loading, call not timed), with the
plan the node recorded.

On CUDA the peak is ``torch.cuda.max_memory_allocated`` (what offloading saves), and ``bench/gpu_check.sh`` runs
this at SDXL size. On the CPU the peak is the process's RSS, which the modes cannot change (the weights stay in RAM
and torch itself dominates), so there it only proves every mode runs.
Usage: python bench/memory_modes.py [--device cuda:0] [--model tiny/sdxl] [--size 1024] [--modes gpu,offload]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

MODES = "gpu,offload,sequential,gpu+fp8,auto"


def measure(device: str, model: str, size: int, mode: str, steps: int, repeats: int) -> dict[str, Any]:
    """One mode in this process: load, one untimed picture, then ``repeats`` timed ones."""
    import resource

    import torch

    from nodeforge.engine.cache import ResultCache
    from nodeforge.engine.compiler import GraphEnv
    from nodeforge.engine.document import parse_document
    from nodeforge.engine.memory_modes import parse_memory_modes
    from nodeforge.engine.models import ModelManager
    from nodeforge.engine.registry import Registry
    from nodeforge.engine.saved_graphs import GraphLibrary
    from nodeforge.engine.session import Session

    cuda = device.startswith("cuda")
    budget = int(torch.cuda.mem_get_info(torch.device(device))[1] * 0.9) if cuda else 32 << 30
    manager = ModelManager({device: budget}, memory=parse_memory_modes(mode, [device]))
    session = Session(GraphEnv(Registry.discover(), GraphLibrary([])), ResultCache(None), devices=[device],
                      workers=1, models=manager)
    graph = parse_document({"nodes": {"img": {"type": "image.generate", "inputs": {
        "prompt": "a red fox in the snow", "model": model, "width": size, "height": size, "steps": steps,
        "guidance_scale": 0.0, "seed": {"input": "seed"}}}}, "inputs": {"seed": {"type": "int", "default": 0}},
        "outputs": {"image": {"from": "img.image"}}})
    first = session.run(graph, {"seed": 0})
    if first.record.status != "succeeded":
        return {"mode": mode, "error": first.record.error}
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for seed in range(1, repeats + 1):
        session.run(graph, {"seed": seed})
    if cuda:
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / repeats
    peak = torch.cuda.max_memory_allocated(device) if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    plan = first.record.nodes["img"].details["memory"]
    return {"mode": mode, "chosen": plan["mode"], "how": plan["how"], "seconds_per_image": round(seconds, 3),
            "peak_mib": round(peak / 2**20, 1), "peak_kind": "cuda allocated" if cuda else "process RSS",
            "model_mib": round(plan["model_bytes"] / 2**20, 1),
            "planned_device_mib": round(plan["device_bytes"] / 2**20, 1),
            "decode_estimate_mib": round(plan["vae"]["decode_bytes"] / 2**20, 1),
            "tiling": plan["vae"]["tiling"], "fp8": plan["fp8"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0" if _has_cuda() else "cpu")
    parser.add_argument("--model", default="tiny/sdxl")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--modes", default=MODES)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.device, args.model, args.size, args.one, args.steps, args.repeats)))
        return 0
    print(f"memory modes: {args.model} at {args.size}x{args.size}, {args.steps} steps, on {args.device}")
    for mode in args.modes.split(","):
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", mode, "--device", args.device,
                               "--model", args.model, "--size", str(args.size), "--steps", str(args.steps),
                               "--repeats", str(args.repeats)], capture_output=True, text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode or not lines:
            print(f"  {mode:<14} failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
            continue
        row = json.loads(lines[-1])
        if "error" in row:
            print(f"  {mode:<14} failed: {row['error']}")
            continue
        print(f"  {mode:<14} -> {row['chosen']:<10} {row['seconds_per_image']:7.3f} s/image  peak "
              f"{row['peak_mib']:9.1f} MiB ({row['peak_kind']})  model {row['model_mib']} MiB, planned on device "
              f"{row['planned_device_mib']} MiB, decode estimate {row['decode_estimate_mib']} MiB"
              f"{', tiled' if row['tiling'] else ''}{', fp8 ' + '+'.join(row['fp8']) if row['fp8'] else ''}")
    return 0


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


if __name__ == "__main__":
    sys.exit(main())
