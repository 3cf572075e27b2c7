"""What a sweep saves: one ``nodeforge run --sweep`` against the same cells as separate CLI runs, and the engine's
own cost per cell.

- A 12-cell sweep (tiny/sd, tiny/sdxl, tiny/flux x seeds 1..4; 64x64, 4 steps) of a one-node image graph as one
  ``nodeforge run G --sweep model=... --sweep seed=1..4`` against 12 ``nodeforge run G --set ...`` processes, both
  without the result cache: the sweep loads each model once and starts Python once (target: at least 3x faster).
- The engine's cost per cell: the ``hello`` text graph swept over 1,000 names in one process (expanding the
  combined graph, validating, running, reading back the table), per cell.

Run: ``.venv/bin/python bench/sweep.py`` (offline; about a minute on two idle CPU cores).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json
import subprocess
import tempfile
import time
from collections.abc import Callable

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import load_document
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session
from nodeforge.engine.sweep import expand_sweep, node_states, sweep_cells, sweep_table

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["tiny/sd", "tiny/sdxl", "tiny/flux"]
SEEDS = [1, 2, 3, 4]
GRAPH = {"schema": "nodeforge/graph@1", "name": "picture",
         "inputs": {"model": {"type": "text", "default": "tiny/sd"}, "seed": {"type": "int", "default": 1}},
         "nodes": {"picture": {"type": "image.generate", "inputs": {
             "prompt": "a red fox in the snow", "model": {"input": "model"}, "seed": {"input": "seed"},
             "width": 64, "height": 64, "steps": 4, "guidance_scale": 0.0}}},
         "outputs": {"image": {"from": "picture.image"}}}


def cli(folder: Path, *args: str) -> None:
    env = {**os.environ, "NODEFORGE_DATA_DIR": str(folder / "data")}
    done = subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", "run", str(folder / "picture.json"),
                           "--no-cache", "--devices", "cpu", "--json", "--out", str(folder / "out"), *args],
                          capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def per_cell_overhead(cells: int) -> float:
    """Seconds per cell of a sweep of the hello text graph (the nodes themselves cost microseconds)."""
    session = Session(GraphEnv(Registry.discover(), GraphLibrary([])), None, workers=4, devices=["cpu"])
    document = load_document(ROOT / "graphs" / "hello.json")
    started = time.perf_counter()
    sweep = expand_sweep(document, sweep_cells({"name": [f"person {i}" for i in range(cells)]}))
    result = session.run(sweep.document, sweep.inputs)
    table = sweep_table(sweep.document.ui["sweep"], node_states(result.record), result.record.outputs)
    seconds = time.perf_counter() - started
    assert result.record.status == "succeeded" and len(table) == cells
    return seconds / cells


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "picture.json").write_text(json.dumps(GRAPH), encoding="utf-8")
        cli(folder, "--set", "model=tiny/sd")  # builds the tiny models once, outside the timings
        for model in MODELS[1:]:
            cli(folder, "--set", f"model={model}")
        separate = timed(lambda: [cli(folder, "--set", f"model={model}", "--set", f"seed={seed}")
                                  for model in MODELS for seed in SEEDS])
        swept = timed(lambda: cli(folder, "--sweep", "model=" + ",".join(MODELS), "--sweep", "seed=1..4"))
    ratio = separate / swept
    print(f"{len(MODELS) * len(SEEDS)}-cell sweep of image.generate (3 tiny models x 4 seeds, 64x64, 4 steps), "
          "no result cache")
    print(f"  12 separate CLI runs {separate:8.2f} s")
    print(f"  one --sweep CLI run  {swept:8.2f} s   {ratio:.1f}x faster  {'ok' if ratio >= 3 else 'under 3x'}")
    overhead = per_cell_overhead(1000)
    print(f"engine cost per cell (hello text graph swept over 1,000 names, in process): {overhead * 1e6:.0f} us")


if __name__ == "__main__":
    main()
