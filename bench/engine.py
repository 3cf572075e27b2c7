"""Engine overhead, per node, with its targets (issue 12) and ComfyUI's figures where the peer notes give one.

* In-process: a chain of ``text.template`` nodes run by one ``Session`` on a compiled graph: cold (empty disk cache),
  fully cached from the memory tier (the same session again) and from the disk tier (a fresh cache handle), and with
  no cache; plus the ``bench.inc`` chain and fan-out (add-one nodes, as in ComfyUI's measurement).
* Through the CLI: ``nodeforge run chain.json --json`` as a new process, cold (fresh data dir) and fully cached (run
  again), per node = (median process time - median process time of a one-node chain) / nodes, at 1,000 and 10,000
  nodes (the figure must stay flat).
* Validation per node (compiling a 10,000-node chain); start-up of ``nodeforge --help`` and ``nodeforge validate
  graphs/hello.json`` (and that neither imports torch); bytes of events per node of a fully cached run, framed as
  the server's SSE stream frames them.

Every figure is a median of repeated runs (the benchmark machine is shared and noisy). ``--quick`` runs fewer
repeats and only the 1,000-node sizes (about a minute); the full run takes a few minutes on two cores.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import CompiledGraph, GraphEnv, compile_graph
from nodeforge.engine.context import NodeContext
from nodeforge.engine.document import GraphDocument, parse_document
from nodeforge.engine.events import Event
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session

ROOT = Path(__file__).resolve().parents[1]
# ComfyUI (peer-comfyui.md): in-process 1,000-node chain, ms per node, v0.3.64 side by side; validation 15-21 us per
# node (18 used for the ratio); a 100-node chain fully cached sends 17 bytes per node on its live channel.
COMFY_CHAIN_COLD_US, COMFY_CHAIN_CACHED_US = 61_600.0, 57_500.0
COMFY_FAN_OUT_COLD_US, COMFY_FAN_OUT_CACHED_US = 4_270.0, 246.0
COMFY_VALIDATE_US = 18.0
COMFY_CACHED_EVENT_BYTES = 17.0


class Inc(Node):
    """x + 1."""

    type_id = "bench.inc"
    version = "1.0.0"

    class Inputs(NodeInputs):
        x: int = 0

    class Outputs(NodeOutputs):
        value: int

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=inputs.x + 1)


class Total(Node):
    """Sum of a list of ints."""

    type_id = "bench.total"
    version = "1.0.0"

    class Inputs(NodeInputs):
        values: list[int]

    class Outputs(NodeOutputs):
        value: int

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=sum(inputs.values))


def template_chain(n: int, salt: str = "") -> dict[str, Any]:
    """n ``text.template`` nodes in a line, each passing its text on; ``salt`` makes the keys new."""
    nodes: dict[str, Any] = {"n0": {"type": "text.template", "inputs": {"template": f"start{salt}"}}}
    nodes.update({f"n{i}": {"type": "text.template", "inputs": {"template": "{p}", "p": {"from": f"n{i - 1}.text"}}}
                  for i in range(1, n)})
    return {"schema": "nodeforge/graph@1", "name": f"chain-{n}", "nodes": nodes,
            "outputs": {"result": {"from": f"n{n - 1}.text"}}}


def inc_chain(n: int) -> GraphDocument:
    nodes: dict[str, Any] = {"n0": {"type": "bench.inc", "inputs": {"x": 0}}}
    nodes.update({f"n{i}": {"type": "bench.inc", "inputs": {"x": {"from": f"n{i - 1}.value"}}} for i in range(1, n)})
    return parse_document({"nodes": nodes, "outputs": {"result": {"from": f"n{n - 1}.value"}}})


def fan_out(n: int) -> GraphDocument:
    nodes: dict[str, Any] = {f"n{i}": {"type": "bench.inc", "inputs": {"x": i}} for i in range(n)}
    nodes["total"] = {"type": "bench.total", "inputs": {"values": [{"from": f"n{i}.value"} for i in range(n)]}}
    return parse_document({"nodes": nodes, "outputs": {"result": {"from": "total.value"}}})


def show(label: str, value: float, unit: str, target: float | None = None, comfy: float | None = None,
         lower_is_better: bool = True) -> None:
    """One figure: its value, target and ratio to the target (<= 1 meets it), ComfyUI's and ComfyUI's / ours."""
    line = f"{label:<62} {value:10.2f} {unit:<8}"
    if target is not None:
        ratio = value / target
        verdict = "ok" if (ratio <= 1 if lower_is_better else ratio >= 1) else "OVER"
        line += f" target {target:g} {unit}  x{ratio:.2f} of target  {verdict:<4}"
    if comfy is not None:
        line += f"  ComfyUI {comfy:g} {unit} ({comfy / value:.1f}x ours)"
    print(line, flush=True)


def timed(work: Callable[[], Any]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def in_process(name: str, compiled: CompiledGraph, env: GraphEnv, root: Path, repeats: int, check: str,
               comfy: tuple[float, float] | None = None, targets: tuple[float, float] | None = None) -> None:
    """Cold / cached (memory) / cached (fresh disk handle) / no cache, per node, medians of ``repeats``."""
    nodes = len(compiled.nodes)
    cold, memory, disk, none = [], [], [], []
    for attempt in range(repeats):
        folder = root / f"{name}-{attempt}"
        cache = ResultCache(folder)
        session = Session(env, cache, workers=8)
        cold.append(timed(lambda session=session: session.run(compiled)))
        again = session.run(compiled)
        assert again.record.nodes[check].status == "cached", again.record.error
        memory.append(timed(lambda session=session: session.run(compiled)))
        cache.close()
        reopened = ResultCache(folder)
        fresh = Session(env, reopened, workers=8)
        disk.append(timed(lambda fresh=fresh: fresh.run(compiled)))
        reopened.close()
        bare = Session(env, None, workers=8)
        none.append(timed(lambda bare=bare: bare.run(compiled)))
    cold_target, cached_target = targets or (None, None)
    comfy_cold, comfy_cached = comfy or (None, None)
    per = 1e6 / nodes
    show(f"in-process {name}: cold, disk cache on", statistics.median(cold) * per, "us/node", cold_target, comfy_cold)
    show(f"in-process {name}: fully cached, memory tier", statistics.median(memory) * per, "us/node",
         cached_target, comfy_cached)
    show(f"in-process {name}: fully cached, fresh handle (disk)", statistics.median(disk) * per, "us/node",
         cached_target, comfy_cached)
    show(f"in-process {name}: executed, --no-cache", statistics.median(none) * per, "us/node", cold_target)


def process_env(root: Path, bytecode: bool = True) -> dict[str, str]:
    """The environment of the measured processes: with Python's bytecode cache (in the benchmark's folder), as an
    installed nodeforge runs, unless ``bytecode`` is False (PYTHONDONTWRITEBYTECODE=1, as some sandboxes set)."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def cli_run(path: Path, data_dir: Path, env: dict[str, str]) -> tuple[float, float, dict[str, Any]]:
    """One ``nodeforge run --json`` process: (wall seconds, CPU seconds, the run record)."""
    command = [sys.executable, "-m", "nodeforge.engine.cli", "run", str(path), "--json", "--data-dir", str(data_dir),
               "--out", str(data_dir / "out")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, json.loads(done.stdout)


def through_cli(sizes: list[int], repeats: int, root: Path) -> None:
    """Whole ``nodeforge run`` processes, cold and fully cached, minus a one-node chain's process. The sizes take
    turns within each repeat, so a change of load on the machine falls on all of them."""
    series: dict[tuple[int, str], list[tuple[float, float]]] = {}
    paths = {}
    env = process_env(root)
    for n in [1, *sizes]:
        paths[n] = root / f"chain-{n}.json"
        paths[n].write_text(json.dumps(template_chain(n)))
    cli_run(paths[1], root / "cli-warm-up", env)  # fills the bytecode cache
    for attempt in range(repeats):
        for n, path in paths.items():
            data_dir = root / f"cli-{n}-{attempt}"
            wall, cpu, record = cli_run(path, data_dir, env)
            assert record["status"] == "succeeded", record["error"]
            series.setdefault((n, "cold"), []).append((wall, cpu))
            wall, cpu, record = cli_run(path, data_dir, env)
            assert {node["status"] for node in record["nodes"].values()} == {"cached"}
            series.setdefault((n, "cached"), []).append((wall, cpu))

    def median(n: int, kind: str, index: int) -> float:
        return statistics.median(item[index] for item in series[(n, kind)])

    for kind in ("cold", "cached"):
        print(f"{f'CLI: one-node chain, {kind} (whole process)':<62} {median(1, kind, 0) * 1e3:10.1f} ms       "
              f" (CPU {median(1, kind, 1) * 1e3:.0f} ms)")
    per_node: dict[tuple[int, str], float] = {}
    for n in sizes:
        for kind, target, label in (("cold", 60, "cold"), ("cached", 15, "fully cached")):
            wall = (median(n, kind, 0) - median(1, kind, 0)) / n * 1e6
            cpu = (median(n, kind, 1) - median(1, kind, 1)) / n * 1e6
            per_node[(n, kind)] = wall
            show(f"CLI: {n:,}-node text.template chain, {label}", wall, "us/node", target)
            print(f"{'':<62} {cpu:10.2f} us/node  (CPU time of the process, same subtraction)")
    if len(sizes) > 1:
        for kind in ("cold", "cached"):
            ratio = per_node[(sizes[-1], kind)] / per_node[(sizes[0], kind)]
            show(f"CLI: {kind} per node, {sizes[-1]:,} vs {sizes[0]:,} nodes (flat: about 1)", ratio, "x")


def start_up(repeats: int, root: Path) -> None:
    """``nodeforge --help`` and ``nodeforge validate graphs/hello.json`` as new processes (with the bytecode cache,
    then without it for comparison); neither may import torch."""
    hello = str(ROOT / "graphs" / "hello.json")
    commands = (("nodeforge --help", ["--help"]), ("nodeforge validate graphs/hello.json", ["validate", hello]))
    for bytecode in (True, False):
        env = process_env(root, bytecode)
        for label, args in commands:
            command = [sys.executable, "-m", "nodeforge.engine.cli", *args]
            subprocess.run(command, capture_output=True, cwd=ROOT, check=True, env=env)  # fills the bytecode cache
            seconds = [timed(lambda command=command, env=env: subprocess.run(command, capture_output=True,
                                                                             cwd=ROOT, check=True, env=env))
                       for _ in range(repeats)]
            if bytecode:
                show(f"start-up: {label}", statistics.median(seconds), "s", 0.3)
            else:
                show(f"start-up: {label}, no bytecode cache", statistics.median(seconds), "s")
    probe = (f"import json, sys\nfrom nodeforge.engine.cli import main\nmain(['validate', {hello!r}])\n"
             "print(json.dumps(sorted(m for m in ('torch', 'numpy', 'fastapi', 'rich') if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env=process_env(root))
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{'start-up: heavy modules validate imports':<62} {', '.join(loaded) or 'none'}"
          f"{'  (torch: OVER)' if 'torch' in loaded else ''}")


def event_bytes(env: GraphEnv, root: Path, n: int) -> None:
    """Bytes of a run's events as SSE frames (``id: N``, one line of JSON), per node: cold, then fully cached."""
    compiled = compile_graph(parse_document(template_chain(n, salt="events")), env)
    cache = ResultCache(root / "events")
    session = Session(env, cache)
    sizes: list[int] = []

    def listen(event: Event) -> None:
        frame = f"id: {event.seq}\ndata: {json.dumps(event.to_dict(), separators=(',', ':'), ensure_ascii=False)}\n\n"
        sizes.append(len(frame.encode()))

    session.run(compiled, listener=listen)
    cold = sum(sizes) / n
    sizes.clear()
    session.run(compiled, listener=listen)
    cache.close()
    show(f"events: {n:,}-node chain cold, SSE bytes", cold, "B/node")
    show(f"events: {n:,}-node chain fully cached, SSE bytes", sum(sizes) / n, "B/node", 40, COMFY_CACHED_EVENT_BYTES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 1,000-node sizes only (about a minute)")
    parser.add_argument("--repeats", type=int, help="runs per figure (default 5, 3 with --quick; the CLI figures "
                                                    "take twice as many)")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    sizes = [1000] if args.quick else [1000, 10_000]
    registry = Registry.discover()
    registry.add(Inc, "bench")
    registry.add(Total, "bench")
    env = GraphEnv(registry)
    print(f"nodeforge engine benchmark, python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"{repeats} repeats, medians", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in sizes:
            compiled = compile_graph(parse_document(template_chain(n)), env)
            in_process(f"text.template chain {n:,}", compiled, env, root, repeats, f"n{n - 1}", targets=(30, 8))
        in_process("bench.inc chain 1,000", compile_graph(inc_chain(1000), env), env, root, repeats, "n999",
                   comfy=(COMFY_CHAIN_COLD_US, COMFY_CHAIN_CACHED_US))
        in_process("bench.inc fan-out 1,000", compile_graph(fan_out(1000), env), env, root, repeats, "total",
                   comfy=(COMFY_FAN_OUT_COLD_US, COMFY_FAN_OUT_CACHED_US))
        big = parse_document(template_chain(10_000))
        validate = statistics.median(timed(lambda: compile_graph(big, env)) for _ in range(repeats))
        show("validate + compile a 10,000-node text.template chain", validate / 10_000 * 1e6, "us/node", 20,
             COMFY_VALIDATE_US)
        event_bytes(env, root, 1000)
        start_up(max(repeats, 5) * 2 + 1, root)
        through_cli(sizes, 2 * repeats + 1, root)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
