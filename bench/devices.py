"""Multi-device scheduling: independent tiny diffusion branches on one, two and four virtual devices, and the
scheduler's overhead per node on a 10,000-node graph.

On a machine with N cores, branches on virtual CPU devices can only run N at a time (each torch op here uses one
thread), so the speedup is capped by the cores, not by the scheduler; on GPUs each device is a real accelerator.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import resource
import tempfile
import time
from typing import Any

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv, compile_graph
from nodeforge.engine.context import NodeContext
from nodeforge.engine.document import parse_document
from nodeforge.engine.models import ModelManager
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session


class Step(Node):
    """A trivial accelerator node: measures what placement costs."""

    type_id = "bench.step"
    version = "1.0.0"
    accelerator = True

    class Inputs(NodeInputs):
        x: int = 0

    class Outputs(NodeOutputs):
        value: int

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(value=inputs.x + 1)


def branches(count: int, steps: int) -> Any:
    nodes = {f"b{i}": {"type": "image.generate", "inputs": {
        "prompt": f"a red fox, take {i}", "model": "tiny/sd", "width": 64, "height": 64, "steps": steps,
        "guidance_scale": 1.0, "seed": i}} for i in range(count)}
    return parse_document({"nodes": nodes})


def timed_run(env: GraphEnv, devices: list[str], document: Any, data_dir: Path) -> tuple[float, Session]:
    executor = Session(env, ResultCache(None), devices=devices, data_dir=data_dir,
                        models=ModelManager({device: 4 << 30 for device in devices}))
    executor.run(branches(len(devices), 1), out_dir=None)  # load the model on every device first
    start = time.perf_counter()
    result = executor.run(document)
    elapsed = time.perf_counter() - start
    assert result.record.status == "succeeded", result.record.error
    return elapsed, executor


def main() -> int:
    import torch

    torch.set_num_threads(1)
    registry = Registry.discover()
    registry.add(Step, "bench")
    env = GraphEnv(registry)
    print(f"nodeforge device benchmark: {os.cpu_count()} cpus, torch threads per op 1")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        for count in (2, 4):
            document = branches(count, steps=24)
            baseline = None
            for devices in (["cpu:0"], ["cpu:0", "cpu:1"], ["cpu:0", "cpu:1", "cpu:2", "cpu:3"]):
                elapsed, _ = timed_run(env, devices, document, data_dir)
                baseline = baseline or elapsed
                print(f"{count} tiny-sd branches (24 steps, 64px) on {len(devices)} device(s): {elapsed:6.2f} s  "
                      f"speedup {baseline / elapsed:4.2f}x")
    nodes: dict[str, Any] = {f"n{i}": {"type": "bench.step", "inputs": {"x": i}} for i in range(10_000)}
    compiled = compile_graph(parse_document({"nodes": nodes}), env)
    for devices in (["cpu"], ["cpu:0", "cpu:1"]):
        executor = Session(env, None, devices=devices, models=ModelManager({d: 1 << 30 for d in devices}))
        start = time.perf_counter()
        result = executor.run(compiled)
        elapsed = time.perf_counter() - start
        assert result.record.status == "succeeded"
        print(f"10,000 accelerator nodes on {len(devices)} device(s): {elapsed * 1e3:7.1f} ms, "
              f"{elapsed / 10_000 * 1e6:6.1f} us per node (placement, dispatch and bookkeeping)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
