"""Engine overhead: a 1,000-node chain and a 1,000-node fan-out, cold and fully cached, and validating 10,000 nodes.

Each figure is printed beside a plain Python loop doing the same work; targets: < 100 us engine overhead per
executed node, < 20 us per cached node, < 1 s to validate 10,000 nodes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.context import NodeContext
from nodeforge.engine.document import GraphDocument, parse_document
from nodeforge.engine.graph import GraphEnv, compile_graph
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session


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


def chain(n: int) -> GraphDocument:
    nodes: dict[str, Any] = {"n0": {"type": "bench.inc", "inputs": {"x": 0}}}
    nodes.update({f"n{i}": {"type": "bench.inc", "inputs": {"x": {"from": f"n{i - 1}.value"}}} for i in range(1, n)})
    return parse_document({"nodes": nodes, "outputs": {"result": {"from": f"n{n - 1}.value"}}})


def fan_out(n: int) -> GraphDocument:
    nodes: dict[str, Any] = {f"n{i}": {"type": "bench.inc", "inputs": {"x": i}} for i in range(n)}
    nodes["total"] = {"type": "bench.total", "inputs": {"values": [{"from": f"n{i}.value"} for i in range(n)]}}
    return parse_document({"nodes": nodes, "outputs": {"result": {"from": "total.value"}}})


def plain_chain(n: int) -> int:
    x = 0
    for _ in range(n):
        x = x + 1
    return x


def plain_fan_out(n: int) -> int:
    return sum(i + 1 for i in range(n))


def best_of(repeats: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def row(label: str, seconds: float, plain: float, nodes: int, target_us: float | None = None) -> None:
    per_node = (seconds - plain) / nodes * 1e6
    verdict = "" if target_us is None else ("  ok" if per_node < target_us else f"  OVER {target_us:.0f} us")
    print(f"{label:<44} {seconds * 1e3:9.1f} ms  {per_node:8.1f} us/node  plain {plain * 1e6:8.1f} us  "
          f"ratio {seconds / plain:9.0f}x{verdict}")


def measure(name: str, build: Callable[[int], GraphDocument], plain: Callable[[int], int], n: int,
            env: GraphEnv, data_root: Path) -> None:
    document = build(n)
    compiled = compile_graph(document, env)
    expected = plain(n)
    plain_seconds = best_of(20, lambda: plain(n))
    cold_times, no_cache_times, cached_times, disk_cached_times = [], [], [], []
    for attempt in range(5):
        cache = ResultCache(data_root / f"{name}-{attempt}")
        executor = Session(env, cache, workers=8)
        start = time.perf_counter()
        result = executor.run(compiled)
        cold_times.append(time.perf_counter() - start)
        assert result.values["result"] == expected, result.record.error
        start = time.perf_counter()
        again = executor.run(compiled)
        cached_times.append(time.perf_counter() - start)
        assert again.record.nodes[f"n{n - 1}" if name == "chain" else "total"].status == "cached"
        cache.close()
        reopened = ResultCache(data_root / f"{name}-{attempt}")
        start = time.perf_counter()
        Session(env, reopened, workers=8).run(compiled)
        disk_cached_times.append(time.perf_counter() - start)
        reopened.close()
        start = time.perf_counter()
        Session(env, None, workers=8).run(compiled)
        no_cache_times.append(time.perf_counter() - start)
    nodes = len(compiled.nodes)
    row(f"{name} {n}: executed (disk cache on)", statistics.median(cold_times), plain_seconds, nodes, 100)
    row(f"{name} {n}: executed (--no-cache)", statistics.median(no_cache_times), plain_seconds, nodes, 100)
    row(f"{name} {n}: fully cached, memory tier", statistics.median(cached_times), plain_seconds, nodes, 20)
    row(f"{name} {n}: fully cached, fresh handle (disk)", statistics.median(disk_cached_times), plain_seconds,
        nodes, 20)


def main() -> int:
    registry = Registry.discover()
    registry.add(Inc, "bench")
    registry.add(Total, "bench")
    env = GraphEnv(registry)
    print(f"nodeforge engine benchmark, python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    with tempfile.TemporaryDirectory() as tmp:
        measure("chain", chain, plain_chain, 1000, env, Path(tmp))
        measure("fan-out", fan_out, plain_fan_out, 1000, env, Path(tmp))
    big = chain(10_000)
    validate_seconds = best_of(3, lambda: compile_graph(big, env))
    plain_check = best_of(3, lambda: [isinstance(node.inputs, dict) for node in big.nodes.values()])
    print(f"{'validate 10,000-node chain':<44} {validate_seconds * 1e3:9.1f} ms  "
          f"{validate_seconds / 10_000 * 1e6:8.1f} us/node  plain {plain_check * 1e6:8.1f} us  "
          f"ratio {validate_seconds / plain_check:9.0f}x  {'ok' if validate_seconds < 1 else 'OVER 1 s'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
