"""nodeforge against ComfyUI itself (issue 25): the same workflow, checkpoint and seed in both engines; per
``sampler:scheduler`` config and prompt the PSNR of the two pictures, each engine's wall time and peak memory.

Both engines load one single-file checkpoint with the real full-size architecture and seeded random weights (SD 1.5,
or SDXL with ``--model sdxl``), built once with this venv into ``WORK/checkpoints/`` (no weights are downloaded).
The workflow is ComfyUI's own default one (``script_examples/basic_api_example.py`` of the checkout: checkpoint
loader, two CLIPTextEncode, EmptyLatentImage, KSampler, VAEDecode, SaveImage) with the config, prompt, size, steps and
seed of each case written into it. ComfyUI runs it as given (``main.py`` from ``--comfy`` in its own venv,
``--comfy-python``); nodeforge runs what ``nodeforge import comfy`` makes of the same workflow, through
``nodeforge serve`` in a fresh data dir. Each case gets its own seed; a warm-up picture (both engines load the model)
comes first and is not counted; the engine that goes first alternates. Time is POST to finished picture; peak memory
is the server process's peak RSS (VmHWM) so far.

Run by hand, not in CI (about a minute per SD 1.5 picture at 256 px, 6 steps, on two CPU cores):

    .venv/bin/python bench/comfy_parity.py --work ../comfy-parity --comfy ../comfy-parity/ComfyUI \
        --comfy-python ../comfy-parity/cvenv/bin/python --size 256 --steps 6 --configs euler:normal,dpmpp_2m:karras

SDXL on a 24 GB machine: one engine at a time, ``--model sdxl --only comfy`` then ``--model sdxl --only nodeforge``
with the same arguments; results are kept per case in ``WORK/results/<model>-<size>px-<steps>steps.json``, so the
second run prints the PSNR against the first run's pictures (its times come from two runs: compare them only on an
otherwise idle machine). On CPU, SDXL at 256 px peaks near 18.5 GB RSS in ComfyUI and 19.6 GB in nodeforge; SD 1.5
near 6.8 and 6.6 GB. ComfyUI's venv: python3.11 with ComfyUI's
requirements.txt (torch, torchsde, transformers, safetensors, aiohttp, ...).
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
import json
import shlex
import signal
import socket
import statistics
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any

from bench.parity_inputs import (
    ARCHITECTURE,
    EMBEDDING,
    WEIGHTED,
    WITH_EMBEDDING,
    build_embedding,
    case_workflow,
    default_workflow,
)

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("comfy", "nodeforge")


def http(url: str, body: Any = None, timeout: float = 60) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:
        data: bytes = response.read()
        return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """One engine's server process, its log, and its peak RSS."""

    def __init__(self, argv: list[str], cwd: Path, health: str, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(argv, cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                        env=dict(os.environ))
        started = time.monotonic()
        while time.monotonic() - started < 600:
            if self.process.poll() is not None:
                raise SystemExit(f"{argv[0]} exited with {self.process.returncode}; see {log}")
            try:
                urllib.request.urlopen(health, timeout=2).read()
                return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"no answer from {health} in 600 s; see {log}")

    def peak_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for(poll: Any, what: str, timeout: float) -> Any:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        result = poll()
        if result is not None:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"{what}: no result in {timeout:.0f} s")


def run_comfy(base_url: str, workflow: dict[str, Any], timeout: float) -> tuple[float, bytes]:
    started = time.monotonic()
    prompt_id = http(f"{base_url}/prompt", {"prompt": workflow, "client_id": uuid.uuid4().hex})["prompt_id"]

    def done() -> dict[str, Any] | None:
        entry = http(f"{base_url}/history/{prompt_id}").get(prompt_id)
        return entry if entry and entry.get("status", {}).get("completed") is not None else None

    entry = wait_for(done, "ComfyUI", timeout)
    seconds = time.monotonic() - started
    if entry["status"].get("status_str") != "success":
        raise RuntimeError(f"ComfyUI failed: {json.dumps(entry['status'])[:1500]}")
    image = next(out["images"][0] for out in entry["outputs"].values() if out.get("images"))
    query = urllib.parse.urlencode({"filename": image["filename"], "subfolder": image.get("subfolder", ""),
                                    "type": image.get("type", "output")})
    return seconds, download(f"{base_url}/view?{query}")


def run_nodeforge(base_url: str, graph: dict[str, Any], timeout: float) -> tuple[float, bytes]:
    started = time.monotonic()
    run_id = http(f"{base_url}/api/runs", {"graph": graph, "inputs": {}})["id"]

    def done() -> dict[str, Any] | None:
        run: dict[str, Any] = http(f"{base_url}/api/runs/{run_id}")
        return run if run["status"] in ("succeeded", "failed", "cancelled") else None

    run = wait_for(done, "nodeforge", timeout)
    seconds = time.monotonic() - started
    if run["status"] != "succeeded":
        raise RuntimeError(f"nodeforge {run['status']}: {json.dumps(run.get('error'))[:1500]}")
    url = next(out["url"] for out in run["outputs"].values() if isinstance(out, dict) and out.get("url"))
    return seconds, download(base_url + url)


def psnr(a: Path, b: Path) -> float:
    import numpy as np
    from PIL import Image

    x = np.asarray(Image.open(a).convert("RGB"), dtype=np.float64)
    y = np.asarray(Image.open(b).convert("RGB"), dtype=np.float64)
    if x.shape != y.shape:
        return float("nan")
    mse = float(((x - y) ** 2).mean())
    return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT.parent / "comfy-parity",
                   help="work folder outside the repo: checkpoints, logs, data dirs, pictures, results")
    p.add_argument("--comfy", type=Path, help="ComfyUI checkout (default WORK/ComfyUI)")
    p.add_argument("--comfy-python", type=Path, help="ComfyUI venv's python (default WORK/cvenv/bin/python)")
    p.add_argument("--model", choices=sorted(ARCHITECTURE), default="sd15")
    p.add_argument("--checkpoint", type=Path, help="use this single file (default WORK/checkpoints/<model>-random)")
    p.add_argument("--configs", default="euler:normal,dpmpp_2m:karras", help="comma list of sampler:scheduler")
    p.add_argument("--prompt", action="append", dest="prompts",
                   help="a positive prompt (repeatable; default: the workflow's own and a weighted one)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--cfg", type=float, help="default: the workflow's (8)")
    p.add_argument("--seed", type=int, default=1000, help="case i gets seed+i, the warm-up seed-1")
    p.add_argument("--only", choices=ENGINES, help="run one engine; PSNR against pictures of an earlier run")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per picture")
    p.add_argument("--nodeforge-args", default="", help="extra `nodeforge serve` arguments")
    p.add_argument("--comfy-args", default="", help="extra ComfyUI main.py arguments")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    work = args.work.resolve()
    comfy = (args.comfy or work / "ComfyUI").resolve()
    comfy_python = (args.comfy_python or work / "cvenv" / "bin" / "python").absolute()
    for needed in (comfy / "main.py", comfy_python):
        if not needed.exists():
            raise SystemExit(f"missing {needed} (see --comfy, --comfy-python)")
    checkpoint = (args.checkpoint or work / "checkpoints" / f"{args.model}-random.safetensors").resolve()
    if not checkpoint.exists():
        print(f"building {checkpoint} (full-size {args.model}, random weights)", flush=True)
        code = ("import sys; from pathlib import Path; from bench.parity_inputs import build_checkpoint; "
                "build_checkpoint(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))")
        subprocess.run([sys.executable, "-c", code, args.model, str(checkpoint), str(work / "nf-models")],
                       cwd=ROOT, check=True)
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"

    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = work / "runs" / f"{args.model}-{stamp}"
    (run_dir / "logs").mkdir(parents=True)
    results_dir = work / "results"
    pictures = results_dir / f"{args.model}-{args.size}px-{args.steps}steps"
    pictures.mkdir(parents=True, exist_ok=True)
    results_file = results_dir / f"{pictures.name}.json"
    results: dict[str, Any] = json.loads(results_file.read_text()) if results_file.exists() else {}

    base = default_workflow(comfy)
    prompts: list[str | None] = list(args.prompts) if args.prompts else [None, WEIGHTED, WITH_EMBEDDING]
    embedding = build_embedding(args.model, work / "embeddings")
    configs = [tuple(item.split(":")) for item in args.configs.split(",") if item]
    cases = [{"sampler": sampler, "scheduler": scheduler, "prompt": prompt}
             for sampler, scheduler in configs for prompt in prompts]
    for index, case in enumerate(cases):
        case["seed"] = args.seed + index
        case["key"] = f"{case['sampler']}:{case['scheduler']}|{case['prompt']}|{case['seed']}|{args.cfg}"
    warmup = {**cases[0], "seed": args.seed - 1, "key": "warm-up"}

    engines = [args.only] if args.only else list(ENGINES)
    servers: dict[str, Server] = {}
    urls: dict[str, str] = {}
    try:
        if "comfy" in engines:
            comfy_base = run_dir / "comfy-base"
            for sub in ("models/checkpoints", "custom_nodes", "input", "output", "user"):
                (comfy_base / sub).mkdir(parents=True)
            (comfy_base / "models" / "checkpoints" / checkpoint.name).symlink_to(checkpoint)
            (comfy_base / "models" / "embeddings").mkdir(parents=True)
            (comfy_base / "models" / "embeddings" / f"{EMBEDDING}.safetensors").symlink_to(embedding)
            (run_dir / "empty-front-end").mkdir()
            port = free_port()
            urls["comfy"] = f"http://127.0.0.1:{port}"
            argv = [str(comfy_python), str(comfy / "main.py"), "--disable-api-nodes", "--base-directory",
                    str(comfy_base), "--front-end-root", str(run_dir / "empty-front-end"), "--listen", "127.0.0.1",
                    "--port", str(port), *(["--cpu"] if device == "cpu" else []), *shlex.split(args.comfy_args)]
            servers["comfy"] = Server(argv, comfy, f"{urls['comfy']}/system_stats", run_dir / "logs" / "comfy.log")
        if "nodeforge" in engines:
            port = free_port()
            urls["nodeforge"] = f"http://127.0.0.1:{port}"
            search = run_dir / "nodeforge-embeddings"
            search.mkdir()
            (search / f"{EMBEDDING}.safetensors").symlink_to(embedding)
            (run_dir / "nodeforge-data").mkdir()
            toml = f"[folders]\nsearch = [{json.dumps(str(search))}]\n"
            (run_dir / "nodeforge-data" / "models.toml").write_text(toml)
            argv = [str(Path(sys.executable).parent / "nodeforge"), "serve", "--port", str(port), "--data-dir",
                    str(run_dir / "nodeforge-data"), "--no-watch", "--log-level", "warning", "--allow-dir",
                    str(checkpoint.parent), "--allow-dir", str(embedding.parent), "--allow-dir", str(search),
                    "--devices", "cpu" if device == "cpu" else "cuda:0",
                    *shlex.split(args.nodeforge_args)]
            servers["nodeforge"] = Server(argv, ROOT, f"{urls['nodeforge']}/api/health",
                                          run_dir / "logs" / "nodeforge.log")

        def run_case(engine: str, case: dict[str, Any], number: int) -> dict[str, Any]:
            prefix = f"case{number}"
            if engine == "comfy":
                seconds, png = run_comfy(urls[engine], case_workflow(base, checkpoint.name, case, args, prefix),
                                         args.timeout)
                return {"seconds": seconds, "png": png}
            workflow_file = run_dir / f"{prefix}.comfy.json"
            graph_file = run_dir / f"{prefix}.nodeforge.json"
            workflow_file.write_text(json.dumps(case_workflow(base, str(checkpoint), case, args, prefix)))
            imported = subprocess.run([str(Path(sys.executable).parent / "nodeforge"), "import", "comfy",
                                       str(workflow_file), "-o", str(graph_file)], capture_output=True, text=True)
            if imported.returncode != 0:
                raise RuntimeError(f"nodeforge import comfy: {(imported.stdout + imported.stderr)[-1500:]}")
            seconds, png = run_nodeforge(urls[engine], json.loads(graph_file.read_text()), args.timeout)
            return {"seconds": seconds, "png": png, "import": (imported.stdout + imported.stderr).strip()[-600:]}

        for number, case in enumerate([warmup, *cases]):
            order = engines if number % 2 == 0 else engines[::-1]
            for engine in order:
                try:
                    got = run_case(engine, case, number)
                except (RuntimeError, TimeoutError, OSError) as error:
                    got = {"error": str(error)}
                    print(f"{engine} failed on {case['sampler']}:{case['scheduler']}: {error}", flush=True)
                got["peak_mib"] = servers[engine].peak_mib()
                png = got.pop("png", None)
                if number == 0:
                    print(f"warm-up {engine}: {got.get('seconds', float('nan')):.1f} s", flush=True)
                    continue
                if png is not None:
                    path = pictures / f"{engine}-{number - 1}-{case['sampler']}-{case['scheduler']}.png"
                    path.write_bytes(png)
                    got["png"] = str(path)
                entry = results.setdefault(case["key"], {})
                entry[engine] = {**got, "when": stamp}
                print(f"{case['sampler']}:{case['scheduler']} {engine}: "
                      f"{got.get('seconds', float('nan')):.1f} s, peak {got['peak_mib']:.0f} MiB", flush=True)
            results_file.write_text(json.dumps(results, indent=1))
    finally:
        for server in servers.values():
            server.stop()

    print_table(cases, results)
    print(f"\nresults: {results_file}; pictures: {pictures}; logs: {run_dir / 'logs'}")
    return 0


def print_table(cases: list[dict[str, Any]], results: dict[str, Any]) -> None:
    header = ("config", "prompt", "PSNR dB", "ComfyUI s", "nodeforge s", "ratio", "ComfyUI MiB", "nodeforge MiB")
    rows: list[tuple[str, ...]] = []
    ratios: list[float] = []
    for case in cases:
        entry = results.get(case["key"], {})
        comfy, nf = entry.get("comfy", {}), entry.get("nodeforge", {})
        value = psnr(Path(comfy["png"]), Path(nf["png"])) if "png" in comfy and "png" in nf else None
        ratio = comfy["seconds"] / nf["seconds"] if "seconds" in comfy and "seconds" in nf else None
        if ratio is not None:
            ratios.append(ratio)
        prompt = "(workflow's)" if case["prompt"] is None else case["prompt"]

        def cell(engine: dict[str, Any], key: str, form: str) -> str:
            return "error" if "error" in engine else format(engine[key], form) if key in engine else "-"

        rows.append((f"{case['sampler']}:{case['scheduler']}", prompt[:44],
                     "-" if value is None else f"{value:.1f}", cell(comfy, "seconds", ".1f"),
                     cell(nf, "seconds", ".1f"), "-" if ratio is None else f"{ratio:.2f}",
                     cell(comfy, "peak_mib", ".0f"), cell(nf, "peak_mib", ".0f")))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, tuple("-" * w for w in widths), *rows]:
        cells = [text.ljust(w) if i < 2 else text.rjust(w) for i, (text, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells))
    if ratios:
        print(f"\ntime ratio ComfyUI/nodeforge: median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}); above 1 means nodeforge is faster")


if __name__ == "__main__":
    raise SystemExit(main())
