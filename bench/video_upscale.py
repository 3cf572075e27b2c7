"""``video.upscale`` with the real ``realesr-animevideov3`` weights: speed, and quality against bicubic.

- Speed: a 24-frame 128x128 clip (drawn here: outlined shapes moving over a gradient and hatching) upscaled 4x to
  512x512 through the node (a one-node graph, no result cache, model resident), in frames per second, beside the
  same network called frame by frame by hand; "ratio" is node time / direct time (the engine's share).
- Quality: the clip reduced 4x (128 -> 32, bicubic with antialiasing), upscaled back to 128 with the model
  through the node and with bicubic; PSNR of each against the original clip.

Run: ``.venv/bin/python bench/video_upscale.py [--rounds N] [--device cpu|cuda]`` (offline; about a minute on
two CPU cores).
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
import statistics
import tempfile
import time
from typing import Any

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session
from nodeforge.engine.values import Video
from tests.support.clips import moving_shapes

MODEL = "realesr-animevideov3"
FRAMES, SIZE, FPS = 24, 128, 24.0
GRAPH = {"inputs": {"clip": {"type": "video"}},
         "nodes": {"up": {"type": "video.upscale", "inputs": {"video": {"input": "clip"}, "model": MODEL}}},
         "outputs": {"big": {"from": "up.video"}}}


def psnr(a: Any, b: Any) -> float:
    import torch

    return float(10 * torch.log10(1 / torch.mean((a.float().cpu() - b.float().cpu()) ** 2)))


def paired_medians(first: Any, second: Any, rounds: int) -> tuple[float, float]:
    """Median seconds of each action, run in alternating rounds so load from other work falls on both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for action, kept in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            action()
            kept.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    import torch
    from torch.nn import functional as F  # noqa: N812

    from nodeforge.nodes.models import build_resolver
    from nodeforge.nodes.models.upscalers.upscaling import load_upscaler, upscale

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        data_dir = Path(data)
        session = Session(GraphEnv(Registry.discover()), None, devices=[args.device], data_dir=data_dir)
        document = parse_document(GRAPH)
        clip = moving_shapes(FRAMES, SIZE)

        def node(frames: Any) -> Any:
            result = session.run(document, {"clip": Video(frames, FPS)})
            assert result.record.status == "succeeded", result.record.error
            return result.values["big"].frames

        model = load_upscaler(build_resolver().resolve(MODEL, data_dir).path, MODEL, args.device)

        def direct() -> Any:
            out = torch.empty(FRAMES, 3, SIZE * 4, SIZE * 4)
            for index in range(FRAMES):
                out[index:index + 1] = upscale(model, clip[index:index + 1].to(args.device), 0, 0).cpu()
            return out

        assert tuple(node(clip).shape) == (FRAMES, 3, SIZE * 4, SIZE * 4)  # warm: the model is resident
        direct()
        node_s, direct_s = paired_medians(lambda: node(clip), direct, args.rounds)
        print(f"video.upscale {MODEL}, {FRAMES} frames {SIZE}x{SIZE} -> {SIZE * 4}x{SIZE * 4} on {args.device}, "
              f"median of {args.rounds}")
        print(f"  node   {node_s:7.2f} s  {FRAMES / node_s:7.2f} frames/s")
        print(f"  direct {direct_s:7.2f} s  {FRAMES / direct_s:7.2f} frames/s")
        print(f"  ratio node/direct {node_s / direct_s:.3f}")

        small = F.interpolate(clip, size=(SIZE // 4, SIZE // 4), mode="bicubic", antialias=True).clamp(0, 1)
        restored = node(small)
        bicubic = F.interpolate(small, size=(SIZE, SIZE), mode="bicubic").clamp(0, 1)
        print(f"quality: the clip reduced 4x ({SIZE} -> {SIZE // 4}) and upscaled back, PSNR against the original")
        print(f"  {MODEL:22s} {psnr(restored, clip):6.2f} dB")
        print(f"  {'bicubic':22s} {psnr(bicubic, clip):6.2f} dB  (model - bicubic: "
              f"{psnr(restored, clip) - psnr(bicubic, clip):+.2f} dB)")


if __name__ == "__main__":
    main()
