"""What step previews cost: sampling with and without them, through the engine, on a tiny model.

- ``video.generate`` on tiny/wan (128x128, 17 frames, 40 steps: the denoising loop is most of the node's time) and
  ``image.generate`` on tiny/sd (64x64: 32x32 latents, 30 steps, guidance on), each as a one-node graph (no
  result cache, the model resident), run without previews and with previews into a folder at the default rate
  (the first step, then at most four a second and at most 3% of the node's time); the ratio of the node's times
  is the cost (target <= 1.03).
- The same with every step previewed (no rate limit), to show one preview's raw cost per step.

Two figures per variant. The ratio of run times, per interleaved round (so drifting machine load hits every
variant alike), median and best over the rounds. And the share measured inside each run, which a busy machine
barely moves: a preview is made between its step's ``node.progress`` event and its ``node.preview`` event, so the
sum of those gaps over the node's time is what previews took of it (median over the rounds).

Run: ``.venv/bin/python bench/previews.py`` (offline; about a minute on two idle CPU cores). ``--rounds N`` changes
the number of rounds (default 9), ``--threads N`` torch's thread count (default 1).
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
from dataclasses import dataclass, field
from typing import Any

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event, NodePreview, NodeProgress
from nodeforge.engine.previews import FolderSink, Previews
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session

VIDEO = {"prompt": "a red fox running in the snow", "model": "tiny/wan", "frames": 17, "width": 128, "height": 128,
         "steps": 40, "seed": 1}
IMAGE = {"prompt": "a red fox in the snow", "model": "tiny/sd", "width": 64, "height": 64, "steps": 30,
         "guidance_scale": 5.0, "seed": 1}
CASES = (("video.generate tiny/wan 128x128, 17 frames, 40 steps", "video.generate", VIDEO, "video"),
         ("image.generate tiny/sd 64x64, 30 steps, CFG", "image.generate", IMAGE, "image"))


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    shares: list[float] = field(default_factory=list)
    previews: int = 0


def timed(session: Session, document: Any, previews: Previews | None, timing: Timing) -> None:
    """One run: the node's own time (from the record), and the share of it its previews took (from the events)."""
    events: list[Event] = []
    result = session.run(document, listener=events.append, previews=previews)
    if result.record.status != "succeeded":
        raise RuntimeError(result.record.error)
    seconds = result.record.nodes["n"].seconds
    assert seconds is not None
    stepped = {event.data.step: event.at for event in events if isinstance(event.data, NodeProgress)}
    made = [(event.at, event.data.step) for event in events if isinstance(event.data, NodePreview)]
    timing.seconds.append(seconds)
    timing.shares.append(sum(at - stepped[step] for at, step in made) / seconds)
    timing.previews = len(made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps timings steady on a busy "
                                                                "machine)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads: worker threads read it too
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        session = Session(GraphEnv(Registry.discover(), GraphLibrary([])), None, workers=2, devices=["cpu"],
                          data_dir=data_dir)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f}; {args.rounds} interleaved rounds")
        for label, node_type, inputs, output in CASES:
            document = parse_document({"nodes": {"n": {"type": node_type, "inputs": inputs}},
                                       "outputs": {"out": {"from": f"n.{output}"}}})
            report(label, compare(session, document, data_dir / output, args.rounds))


def compare(session: Session, document: Any, folder: Path, rounds: int) -> dict[str, Timing]:
    """The three variants' timings over interleaved rounds, after a warm-up run of each."""
    variants: dict[str, Previews | None] = {
        "no previews": None,
        "previews (default rate)": Previews(FolderSink(folder / "rated")),
        "every step previewed": Previews(FolderSink(folder / "every"), interval=0, budget=None),
    }
    for previews in variants.values():  # warm-up: model built and loaded, first-call costs paid
        timed(session, document, previews, Timing())
    timings = {name: Timing() for name in variants}
    for _ in range(rounds):
        for name, previews in variants.items():
            timed(session, document, previews, timings[name])
    return timings


def report(label: str, timings: dict[str, Timing]) -> None:
    print(f"{label:<51}{'previews':>9}{'median':>9}{'ratio median':>14}{'best':>7}{'share in-run':>14}")
    base, rated = timings["no previews"].seconds, timings["previews (default rate)"]
    for name, timing in timings.items():
        ratios = [seconds / plain for seconds, plain in zip(timing.seconds, base, strict=True)]
        share = statistics.median(timing.shares)
        verdict = "" if timing is not rated else ("  ok" if share <= 0.03 else "  over 3%")
        print(f"  {name:<49}{timing.previews:>9}{statistics.median(timing.seconds):>8.3f}s"
              f"{statistics.median(ratios):>14.3f}{min(ratios):>7.3f}{share:>13.2%}{verdict}")


if __name__ == "__main__":
    main()
