"""Server figures: start to first 200, submissions per second and end-to-end latency under 20 concurrent clients,
and event bytes per node for chain graphs of two sizes (flat as graphs grow: each event is one node's change).

Runs ``nodeforge serve`` in a subprocess on a free loopback port with a temporary data dir.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import contextlib
import json
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from typing import Any

import httpx2

CLIENTS = 20
RUNS_PER_CLIENT = 15
ROOT = Path(__file__).resolve().parents[1]
SMALL = {"name": "bench-small", "inputs": {"who": {"type": "text", "default": "Ada"}},
         "nodes": {"greet": {"type": "text.template", "inputs": {"template": "Hello, {who}!", "who": {"input": "who"}}},
                   "sign": {"type": "text.value", "inputs": {"value": "Bye."}},
                   "all": {"type": "text.join", "inputs": {"texts": [{"from": "greet.text"}, {"from": "sign.text"}]}}},
         "outputs": {"text": {"from": "all.text"}}}


def chain(size: int, salt: str) -> dict[str, Any]:
    nodes: dict[str, Any] = {"n0": {"type": "text.value", "inputs": {"value": salt}}}
    for index in range(1, size):
        nodes[f"n{index}"] = {"type": "text.template",
                              "inputs": {"template": "{p}", "p": {"from": f"n{index - 1}.text"}}}
    return {"name": f"chain-{size}", "nodes": nodes, "outputs": {"last": {"from": f"n{size - 1}.text"}}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "nodeforge.engine.cli", "serve", "--port", str(port),
                                "--data-dir", str(data_dir), "--no-watch", "--log-level", "warning"], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    while True:
        try:
            if httpx2.get(f"{url}/api/health", timeout=1).status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx2.TransportError:
            pass
        if process.poll() is not None:
            raise SystemExit("the server exited during start-up")
        time.sleep(0.01)


class Finishes:
    """Arrival times of ``run.finished`` per run, from one ``/api/events`` listener."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.at: dict[str, float] = {}
        self.ready = threading.Event()
        self.done = threading.Event()
        self.expected = 0
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _listen(self) -> None:
        with contextlib.suppress(httpx2.TransportError):  # the server goes away at the end of the benchmark
            self._read()

    def _read(self) -> None:
        with httpx2.Client(timeout=None) as http, http.stream("GET", f"{self.url}/api/events") as response:
            for line in response.iter_lines():
                self.ready.set()
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                if event["kind"] == "run.finished":
                    self.at[event["run"]] = time.perf_counter()
                    if self.expected and len(self.at) >= self.expected:
                        self.done.set()
                        return


def load(url: str) -> dict[str, float]:
    finishes = Finishes(url)
    finishes.expected = CLIENTS * RUNS_PER_CLIENT
    submitted: dict[str, float] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        with httpx2.Client(base_url=url, timeout=60) as http:
            for turn in range(RUNS_PER_CLIENT):
                began = time.perf_counter()
                response = http.post("/api/runs", json={"graph": SMALL, "inputs": {"who": f"{index}-{turn}"}})
                response.raise_for_status()
                with lock:
                    submitted[response.json()["id"]] = began

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    submit_seconds = time.perf_counter() - started
    if not finishes.done.wait(300):
        raise SystemExit(f"only {len(finishes.at)} of {len(submitted)} runs finished")
    all_seconds = time.perf_counter() - started
    latencies = sorted(finishes.at[run_id] - began for run_id, began in submitted.items())
    return {"runs": len(submitted), "submit_per_s": len(submitted) / submit_seconds,
            "completed_per_s": len(submitted) / all_seconds,
            "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))], "max_ms": 1000 * latencies[-1]}


COMFYUI_SMALL_MS = (2.7, 4.6)
"""ComfyUI v0.3.64's POST-to-end-of-run for a 3-node graph on this machine kind (shared/notes/peer-comfyui.md)."""


def wait_for_devices(url: str) -> None:
    """Device detection imports torch in the background after start-up; measure once it is done."""
    while httpx2.get(f"{url}/api/health", timeout=5).json()["devices"] is None:
        time.sleep(0.05)


def round_trip(url: str, repeats: int = 300) -> float:
    """The HTTP stack's fixed cost: p50 of a GET that does no work (an unknown run: 404), in ms."""
    times = []
    with httpx2.Client(base_url=url, timeout=60) as http:
        for _ in range(repeats):
            began = time.perf_counter()
            http.get("/api/runs/none")
            times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


def idle_latency(url: str, runs: int = 100) -> dict[str, float]:
    """One client, one run at a time: POST to ``run.finished`` with an empty queue."""
    finishes = Finishes(url)
    latencies = []
    with httpx2.Client(base_url=url, timeout=60) as http:
        for turn in range(-1, runs):
            began = time.perf_counter()
            run_id = http.post("/api/runs", json={"graph": SMALL, "inputs": {"who": f"idle-{turn}"}}).json()["id"]
            while run_id not in finishes.at:
                time.sleep(0.0005)
            if turn >= 0:  # the first run also waits for device detection (torch import) after start-up
                latencies.append(finishes.at[run_id] - began)
    latencies.sort()
    return {"p50_ms": 1000 * statistics.median(latencies), "max_ms": 1000 * latencies[-1]}


def event_bytes(url: str, size: int) -> dict[str, float]:
    with httpx2.Client(base_url=url, timeout=300) as http:
        run_id = http.post("/api/runs", json={"graph": chain(size, f"salt-{size}")}).raise_for_status().json()["id"]
        started = time.perf_counter()
        body = http.get(f"/api/runs/{run_id}/events").content
        seconds = time.perf_counter() - started
        record = http.get(f"/api/runs/{run_id}").json()
    assert record["status"] == "succeeded", record["error"]
    frames = [frame for frame in body.split(b"\n\n") if frame.startswith(b"id:")]
    return {"nodes": size, "events": len(frames), "bytes": len(body), "per_node": len(body) / size,
            "largest_event": max(len(frame) for frame in frames), "seconds": seconds}


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        process, url, start_seconds = start_server(Path(scratch) / "data")
        try:
            print(f"server start to first 200 (GET /api/health): {start_seconds * 1000:.0f} ms")
            wait_for_devices(url)
            baseline = round_trip(url)
            idle = idle_latency(url)
            low, high = COMFYUI_SMALL_MS
            print(f"fixed cost: GET of an unknown run (404) p50 {baseline:.2f} ms")
            print(f"one client, empty queue: 3-node graph POST to run.finished p50 {idle['p50_ms']:.1f} ms "
                  f"({idle['p50_ms'] - baseline:.1f} ms over the fixed cost), max {idle['max_ms']:.1f} ms; "
                  f"ComfyUI {low}-{high} ms: ratio {low / idle['p50_ms']:.2f}-{high / idle['p50_ms']:.2f}x "
                  "(> 1: nodeforge faster)")
            figures = load(url)
            print(f"{figures['runs']} runs of a 3-node text graph from {CLIENTS} concurrent clients: "
                  f"{figures['submit_per_s']:.0f} submissions/s accepted (202, durable), "
                  f"{figures['completed_per_s']:.0f} runs/s completed")
            print(f"  end-to-end latency (POST to run.finished on /api/events): p50 {figures['p50_ms']:.0f} ms, "
                  f"p95 {figures['p95_ms']:.0f} ms, max {figures['max_ms']:.0f} ms")
            sizes = [event_bytes(url, size) for size in (1000, 4000)]
            for row in sizes:
                print(f"chain of {row['nodes']} nodes: {row['events']} events, {row['bytes'] / 1024:.0f} KiB of SSE, "
                      f"{row['per_node']:.1f} bytes per node, largest event {row['largest_event']} bytes "
                      f"(run + replay {row['seconds']:.2f} s)")
            print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            print(f"bytes per node, 4000 vs 1000 nodes: x{sizes[1]['per_node'] / sizes[0]['per_node']:.2f} "
                  "(flat = 1.00; a full-state-per-event stream would grow x4)")
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
