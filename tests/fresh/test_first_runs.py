"""First runs as a new user meets them: each in a fresh Python process with a fresh data dir and models dir, so
nothing was imported or built before the graph's own parallel branches start.

A warm test process imports diffusers long before two worker threads reach it; a fresh ``nodeforge run`` does
not, and two diffusion branches on two devices then imported diffusers' lazy modules from two threads at once
(``cannot import name 'StableDiffusionXLPipeline'``). These tests run the CLI and the server in subprocesses for
that reason; ``engine/first_imports.py`` is what makes them pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.server.support import free_port, serving, wait_finished

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "nodeforge.engine.cli"]
SAMPLE = ROOT / "graphs" / "assets" / "sample.png"


def generate(model: str, seed: int = 1, controls: list[dict[str, str]] | None = None) -> dict[str, Any]:
    inputs: dict[str, Any] = {"prompt": "a red fox", "model": model, "steps": 2, "width": 64, "height": 64,
                              "seed": seed}
    if controls:
        inputs["controls"] = controls
    return {"type": "image.generate", "inputs": inputs}


FAMILIES = {
    "schema": "nodeforge/graph@1", "name": "three-families",
    "nodes": {"sd": generate("tiny/sd"), "sdxl": generate("tiny/sdxl"), "flux": generate("tiny/flux")},
    "outputs": {"sd": {"from": "sd.image"}, "sdxl": {"from": "sdxl.image"}, "flux": {"from": "flux.image"}},
}

CONTROLNET_PAIR = {
    "schema": "nodeforge/graph@1", "name": "controlnet-pair",
    "nodes": {
        "picture": {"type": "image.load", "inputs": {"path": str(SAMPLE)}},
        "edges": {"type": "image.canny", "inputs": {"image": {"from": "picture.image"}}},
        "first": {"type": "image.controlnet", "inputs": {"image": {"from": "edges.image"},
                                                         "model": "tiny/controlnet", "weight": 0.5}},
        "second": {"type": "image.controlnet", "inputs": {"image": {"from": "picture.image"},
                                                          "model": "tiny/controlnet", "weight": 0.5}},
        "generate": generate("tiny/sd", controls=[{"from": "first.control"}, {"from": "second.control"}]),
    },
    "outputs": {"image": {"from": "generate.image"}},
}


def fresh_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a new user's shell: offline, with a models dir nothing has been built in yet."""
    env = {key: value for key, value in os.environ.items() if key != "NODEFORGE_MODELS_DIR"}
    return {**env, "NODEFORGE_MODELS_DIR": str(tmp_path / "models"), "HF_HUB_OFFLINE": "1",
            "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}


def run_fresh(tmp_path: Path, graph: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run([*CLI, "run", str(graph), "--json", "--data-dir", str(tmp_path / "data"),
                           "--out", str(tmp_path / "out"), *extra],
                          capture_output=True, text=True, env=fresh_env(tmp_path), cwd=tmp_path, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def write_graph(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / f"{document['name']}.json"
    path.write_text(json.dumps(document))
    return path


def test_three_diffusion_families_on_three_devices_in_a_fresh_process(tmp_path: Path) -> None:
    record = run_fresh(tmp_path, write_graph(tmp_path, FAMILIES), "--devices", "cpu:0,cpu:1,cpu:2")
    assert record["status"] == "succeeded", record
    assert {node["status"] for node in record["nodes"].values()} == {"succeeded"}
    assert len({node["device"] for node in record["nodes"].values()}) == 3
    assert set(record["outputs"]) == {"sd", "sdxl", "flux"}


def test_a_controlnet_pair_in_a_fresh_process(tmp_path: Path) -> None:
    record = run_fresh(tmp_path, write_graph(tmp_path, CONTROLNET_PAIR), "--devices", "cpu:0,cpu:1")
    assert record["status"] == "succeeded", record
    assert record["nodes"]["first"]["status"] == record["nodes"]["second"]["status"] == "succeeded"


def test_the_model_comparison_example_in_a_fresh_process(tmp_path: Path) -> None:
    """graphs/compare-image-models.json: three families and two seeds in parallel cells, as the README runs it."""
    record = run_fresh(tmp_path, ROOT / "graphs" / "compare-image-models.json", "--devices", "cpu:0,cpu:1")
    assert record["status"] == "succeeded", record
    assert {node["status"] for node in record["nodes"].values()} == {"succeeded"}


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[httpx2.Client]:
    port = free_port()
    with serving(port, ["--data-dir", str(tmp_path / "data"), "--devices", "cpu:0,cpu:1", "--no-watch",
                        "--log-level", "warning"], fresh_env(tmp_path), cwd=tmp_path), \
            httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client


def test_the_servers_first_run_draws_two_families_at_once(fresh_server: httpx2.Client) -> None:
    """The first run after ``nodeforge serve`` starts, before anything imported diffusers in that process."""
    submitted = fresh_server.post("/api/runs", json={"graph": FAMILIES})
    assert submitted.status_code == 202, submitted.text
    record = wait_finished(fresh_server, submitted.json()["id"], timeout=300)
    assert record["status"] == "succeeded", record
    assert {node["status"] for node in record["nodes"].values()} == {"succeeded"}
