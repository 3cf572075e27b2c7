"""Import coverage on real ComfyUI workflows (issue 25): every file of a corpus folder goes through nodeforge's real
importer and is counted as a full import, a partial import (only with ``--partial``) or a refusal; the ComfyUI
classes that block are ranked by the number of workflows they block; and each full import is run on tiny stand-in
models given only through ``--set`` of its model and file inputs (plus a small size, two steps, five frames and
one second of sound, for speed).

    .venv/bin/python bench/comfy_corpus.py [CORPUS_DIR] [--no-run] [--show NAME]

The corpus and where each file comes from are described in its README. Runs use one shared models folder (tiny
models build once) and a fresh data folder each, in a subprocess with a time limit.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from nodeforge.nodes.importers import ImportFailed, import_comfy

ROOT = Path(__file__).resolve().parents[1]
RUN_SECONDS = 300
SMALL = {"width": 64, "height": 64, "steps": 2, "frames": 5, "seconds": 1.0}
"""Set on every run where the graph has the input: the tiny models draw noise at any size, so small is enough."""
CLI = "import sys; from nodeforge.engine.cli import main; sys.exit(main(sys.argv[1:]))"
DIFFUSION_PORTS = {"image.generate", "image.transform", "image.inpaint", "image.edit"}


@dataclass
class Outcome:
    name: str
    kind: str  # full, partial, refused
    blockers: list[str] = field(default_factory=list)  # "Class" of every node that blocks (once per class)
    error: str = ""
    document: dict[str, Any] | None = None
    run: str = ""  # "", "ran", or why it did not


def classify(path: Path) -> Outcome:
    data = path.read_bytes()
    try:
        result = import_comfy(data, name=path.stem)
        return Outcome(path.name, "full", document=result.document)
    except ImportFailed as exc:
        blockers = sorted({item.class_type for item in exc.unmapped if not item.reason.startswith("left out")})
        try:
            import_comfy(data, partial=True, name=path.stem)
        except ImportFailed as again:
            return Outcome(path.name, "refused", blockers, again.summary)
        return Outcome(path.name, "partial", blockers, exc.summary)


def bound_ports(document: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Graph input -> the (node type, port) pairs that read it."""
    found: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for node in document["nodes"].values():
        for port, value in node["inputs"].items():
            if isinstance(value, dict) and isinstance(value.get("input"), str):
                found[value["input"]].append((node["type"], port))
    return found


@dataclass(frozen=True)
class Stand:
    """The stand-in files given to the runs: a picture and a short video."""

    picture: Path
    video: Path


def stand_in(name: str, default: Any, uses: list[tuple[str, str]], files: Stand) -> str | None:
    """The ``--set`` value that replaces a model or file input with a tiny stand-in; None for other inputs."""
    ports = {port for _, port in uses}
    types = {type_id for type_id, _ in uses}
    text = str(default).lower()
    if "loras" in ports:
        return "[]"
    if "vae" in ports:
        return ""
    if ports & {"path"} and types & {"video.load"}:
        return str(files.video)
    if ports & {"path"} and types & {"image.load"}:
        return str(files.picture)
    if "model" not in ports:
        return None
    if types & {"video.generate"}:
        return "tiny/wan"
    if types & {"audio.music"}:
        return "tiny/stable-audio"
    if types & {"image.upscale", "video.upscale"}:
        return "tiny/esrgan"
    if types & {"image.ip_adapter"}:
        return "tiny/ip_adapter"
    if types & {"image.depth"}:
        return "tiny/depth"
    family = "flux" if any(h in text for h in ("flux", "schnell")) else "sd3" if "sd3" in text \
        else "sdxl" if "xl" in text else "sd"
    if types & {"image.controlnet"}:
        return {"sd": "tiny/controlnet", "sdxl": "tiny/controlnet-sdxl", "flux": "tiny/controlnet-flux"}.get(
            family, "tiny/controlnet")
    return f"tiny/{family}" if types & DIFFUSION_PORTS else None


def sets_for(document: dict[str, Any], files: Stand) -> list[str]:
    uses = bound_ports(document)
    sets = []
    for name, decl in document["inputs"].items():
        value = stand_in(name, decl.get("default"), uses.get(name, []), files)
        if value is not None:
            sets.append(f"{name}={value}")
        elif name in SMALL:
            sets.append(f"{name}={SMALL[name]}")
    return sets


def run(outcome: Outcome, work: Path, models: Path, files: Stand) -> str:
    assert outcome.document is not None
    folder = work / Path(outcome.name).stem
    folder.mkdir(parents=True)
    graph = folder / "graph.json"
    graph.write_text(json.dumps(outcome.document))
    command = [sys.executable, "-c", CLI, "run", str(graph), "--json", "--data-dir", str(folder / "data"),
               "--out", str(folder / "out")]
    for item in sets_for(outcome.document, files):
        command += ["--set", item]
    env = {**os.environ, "NODEFORGE_MODELS_DIR": str(models), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_SECONDS, env=env, check=False)
    except subprocess.TimeoutExpired:
        return f"over {RUN_SECONDS} s"
    if done.returncode == 0:
        return "ran"
    try:
        record = json.loads(done.stdout)
        error = record.get("error") or record
    except json.JSONDecodeError:
        error = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return " ".join(str(error).split())[:300]


def write_video(path: Path) -> None:
    """Eight 64-pixel frames as an MPEG-4 file, for the workflows that load a video."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), index * 30, np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def percent(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f}%)" if whole else "0/0"


def report(outcomes: list[Outcome]) -> None:
    total = len(outcomes)
    kinds = collections.Counter(outcome.kind for outcome in outcomes)
    for outcome in outcomes:
        line = f"{outcome.kind:8} {outcome.name}"
        if outcome.blockers:
            line += f"  blocked by: {', '.join(outcome.blockers)}"
        elif outcome.kind == "refused":
            line += f"  ({outcome.error[:160]})"
        if outcome.run:
            line += f"  run: {outcome.run}"
        print(line)
    print(f"\nworkflows: {total}")
    print(f"full imports:    {percent(kinds['full'], total)}")
    print(f"partial imports: {percent(kinds['partial'], total)}")
    print(f"refused:         {percent(kinds['refused'], total)}")
    tried = [outcome for outcome in outcomes if outcome.run]
    if tried:
        ran = sum(outcome.run == "ran" for outcome in tried)
        print(f"full imports that run on tiny stand-ins: {percent(ran, len(tried))}")
    ranked = collections.Counter(blocker for outcome in outcomes for blocker in outcome.blockers)
    print("\nblocking ComfyUI classes (workflows blocked):")
    for name, count in ranked.most_common():
        print(f"  {count:3}  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared" / "comfy-corpus"),
                        help="a folder of workflow files (kept outside the repository: the public workflows are "
                             "other people's files, listed with their sources and licences in its README)")
    parser.add_argument("--no-run", action="store_true", help="import only; do not run the full imports")
    parser.add_argument("--show", help="print the import of one file (its graph, notes and what blocks)")
    parser.add_argument("--only", help="only the files whose name contains this")
    args = parser.parse_args()
    files = sorted(path for path in Path(args.corpus).iterdir()
                   if path.suffix.lower() in (".json", ".png", ".webp"))
    if args.show:
        shown = classify(Path(args.corpus) / args.show)
        print(json.dumps(shown.document, indent=1) if shown.document else shown.error, shown.blockers)
        return 0
    if not files:
        print(f"no workflows in {args.corpus}", file=sys.stderr)
        return 2
    outcomes = [classify(path) for path in files if args.only is None or args.only in path.name]
    if not args.no_run:
        with tempfile.TemporaryDirectory(prefix="comfy-corpus-") as temporary:
            work = Path(temporary)
            stand = Stand(work / "picture.png", work / "video.mp4")
            Image.new("RGBA", (64, 64), (120, 90, 60, 255)).save(stand.picture)
            write_video(stand.video)
            for outcome in outcomes:
                if outcome.kind == "full":
                    outcome.run = run(outcome, work / "runs", work / "models", stand)
                    print(f"  ran {outcome.name}: {outcome.run}", file=sys.stderr, flush=True)
    report(outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
