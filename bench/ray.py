"""The Ray backend on a local cluster with logical GPUs (no GPU needed): what it costs and what it buys.

1. Engine overhead per node, in-process against Ray, for a 1,000-node chain and a 1,000-node fan-out (no cache):
   on Ray every node is a remote call (a task for these CPU nodes), so this is the price of process isolation.
2. Two independent tiny diffusion branches (image.generate, tiny/sd, 64 px) on two logical GPUs against one:
   each branch runs in its own DeviceWorker process, so on a machine with N cores up to N run at once.
3. Time to the first result on a warm cluster (workers up, model loaded): a new run in the same driver, and a new
   ``nodeforge run --backend ray --address ...`` process joining the cluster.

The script starts its own Ray clusters and shuts them down; nothing is left running.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
if not __package__:  # run as a file, this folder would shadow the engine package (and ray): use the project root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import ray

from bench.engine import Inc, Total, chain, fan_out
from nodeforge.engine.compiler import GraphEnv, compile_graph
from nodeforge.engine.document import GraphDocument, parse_document
from nodeforge.engine.events import NodeFinished
from nodeforge.engine.models import ModelManager
from nodeforge.engine.ray.driver import RayBackend
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session

ROOT = Path(__file__).resolve().parents[1]


def start_cluster(gpus: int, models: Path) -> RayBackend:
    env_vars = {"PYTHONPATH": str(ROOT), "NODEFORGE_MODELS_DIR": str(models), "OMP_NUM_THREADS": "1",
                "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ray.init(num_cpus=2, num_gpus=gpus, include_dashboard=False, object_store_memory=512 << 20,
             log_to_driver=False, namespace="nodeforge", runtime_env={"env_vars": env_vars})
    return RayBackend()


def stop_cluster(backend: RayBackend) -> None:
    backend.close()
    ray.shutdown()


def best_of(repeats: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def succeeded(executor: Session, document: Any) -> Any:
    result = executor.run(document)
    assert result.record.status == "succeeded", result.record.error
    return result


def branches(count: int, steps: int) -> GraphDocument:
    return parse_document({"nodes": {f"b{i}": {"type": "image.generate", "inputs": {
        "prompt": f"a red fox, take {i}", "model": "tiny/sd", "width": 64, "height": 64, "steps": steps,
        "guidance_scale": 1.0, "seed": i}} for i in range(count)}})


@ray.remote(num_cpus=1)
def _bare(x: int) -> int:
    return x + 1


def overhead(env: GraphEnv, backend: RayBackend) -> None:
    print("1. engine overhead per executed node (no cache), in-process vs Ray")
    succeeded(Session(env, None, workers=8, backend=backend), compile_graph(chain(20), env))
    ray.get([_bare.remote(0) for _ in range(20)])
    bare = best_of(3, lambda: [ray.get(_bare.remote(0)) for _ in range(200)]) / 200
    print(f"   for scale: one bare Ray task round trip here takes {bare * 1e3:5.2f} ms")
    for name, build in (("chain", chain), ("fan-out", fan_out)):
        compiled = compile_graph(build(1000), env)
        nodes = len(compiled.nodes)
        local = best_of(3, lambda: succeeded(Session(env, None, workers=8), compiled))  # noqa: B023
        remote = best_of(3, lambda: succeeded(Session(env, None, workers=8, backend=backend), compiled))  # noqa: B023
        print(f"   {name} {nodes:>5} nodes: in-process {local * 1e3:8.1f} ms = {local / nodes * 1e6:7.1f} us/node;"
              f"  Ray {remote * 1e3:8.1f} ms = {remote / nodes * 1e3:6.2f} ms/node  ({remote / local:5.0f}x)")


def diffusion(env: GraphEnv, backend: RayBackend, steps: int) -> tuple[float, float]:
    """Median wall time of the two-branch graph, and the share of a branch's time both branches ran at once."""
    document = branches(2, steps)
    executor = Session(env, None, workers=4, backend=backend)
    succeeded(executor, document)
    times, overlaps = [], []
    for _ in range(3):
        start = time.perf_counter()
        nodes = succeeded(executor, document).record.nodes
        times.append(time.perf_counter() - start)
        spans = [(node.started or 0.0, node.finished or 0.0) for node in nodes.values()]
        together = min(end for _, end in spans) - max(begin for begin, _ in spans)
        overlaps.append(max(0.0, together) / statistics.mean(end - begin for begin, end in spans))
    return statistics.median(times), statistics.median(overlaps)


def first_result(env: GraphEnv, backend: RayBackend, graph: Path, models: Path) -> None:
    print("3. time to the first result on a warm cluster (workers up, tiny/sd loaded)")
    document = parse_document(json.loads(graph.read_text()))
    executor = Session(env, None, workers=4, backend=backend)
    succeeded(executor, document)
    firsts, totals = [], []
    for _ in range(3):
        seen: list[float] = []
        start = time.perf_counter()
        result = Session(env, None, workers=4, backend=backend).run(
            document, listener=lambda event, seen=seen: seen.append(time.perf_counter())
            if isinstance(event.data, NodeFinished) and not seen else None)
        totals.append(time.perf_counter() - start)
        firsts.append(seen[0] - start)
        assert result.record.status == "succeeded", result.record.error
    print(f"   new run, same driver:    first node result {statistics.median(firsts) * 1e3:7.1f} ms, "
          f"whole graph {statistics.median(totals) * 1e3:7.1f} ms")
    address = ray.get_runtime_context().gcs_address
    with tempfile.TemporaryDirectory() as data:
        start = time.time()
        process = subprocess.run(
            [sys.executable, "-m", "nodeforge.engine.cli", "run", str(graph), "--backend", "ray", "--address", address,
             "--json", "--no-cache", "--data-dir", data, "--out", str(Path(data) / "out")],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
            env={**os.environ, "NODEFORGE_MODELS_DIR": str(models)})
        wall = time.time() - start
    record = json.loads(process.stdout or "{}")
    assert process.returncode == 0, process.stderr[-2000:]
    finished = [datetime_seconds(node["finished_at"]) for node in record["nodes"].values() if node["finished_at"]]
    print(f"   new `nodeforge run --backend ray --address` process: first node result "
          f"{(min(finished) - start) * 1e3:7.1f} ms after launch, process done in {wall * 1e3:7.1f} ms "
          f"(python start-up, imports and connecting to Ray included)")


def datetime_seconds(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def main() -> int:
    registry = Registry.discover()
    registry.add(Inc, "bench")
    registry.add(Total, "bench")
    env = GraphEnv(registry)
    print(f"nodeforge Ray backend benchmark (best of 3 unless said), python {sys.version.split()[0]}, "
          f"ray {ray.__version__}, {os.cpu_count()} cpus; local clusters with logical GPUs")
    steps = 16
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        os.environ["NODEFORGE_MODELS_DIR"] = str(models)
        local = Session(env, None, workers=4, devices=["cpu:0", "cpu:1"],
                         models=ModelManager({"cpu:0": 1 << 30, "cpu:1": 1 << 30}))
        succeeded(local, branches(2, steps))
        in_process = statistics.median(best_of(1, lambda: succeeded(local, branches(2, steps))) for _ in range(3))
        backend = start_cluster(1, models)
        try:
            one, _ = diffusion(env, backend, steps)
        finally:
            stop_cluster(backend)
        backend = start_cluster(2, models)
        try:
            two, overlap = diffusion(env, backend, steps)
            print(f"2. two tiny/sd branches, 64 px, {steps} steps each (median of 3): one logical GPU "
                  f"{one * 1e3:7.1f} ms, two {two * 1e3:7.1f} ms: speedup {one / two:4.2f}x; the branches ran "
                  f"together for {overlap:4.0%} of a branch (in-process on two virtual CPU devices: "
                  f"{in_process * 1e3:7.1f} ms)")
            overhead(env, backend)
            graph = Path(tmp) / "first.json"
            graph.write_text(json.dumps({"nodes": {
                "prompt": {"type": "text.template", "inputs": {"template": "a photo of {what}", "what": "a fox"}},
                "image": {"type": "image.generate", "inputs": {
                    "prompt": {"from": "prompt.text"}, "model": "tiny/sd", "width": 64, "height": 64,
                    "steps": 4, "seed": 1}}}}))
            first_result(env, backend, graph, models)
        finally:
            stop_cluster(backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
