"""One engine session serves every run of a server: with ``--concurrency 2`` two runs still put at most one
accelerator node on a device at a time, proven by the global order of their events."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx2

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, parse_sse, wait_finished, wait_for


def device_gate(gate: str) -> dict[str, Any]:
    return {"name": f"device-{gate}", "nodes": {"hold": {"type": "test.device_gate", "inputs": {"gate": gate}}},
            "outputs": {"value": {"from": "hold.value"}}}


def test_two_concurrent_runs_never_share_one_device(settings: Settings, gates: Path) -> None:
    one_device = dataclasses.replace(settings, devices="cpu:0", concurrency=2)
    with LiveServer(create_app(one_device)) as live, httpx2.Client(base_url=live.url, timeout=30) as http:
        first = http.post("/api/runs", json={"graph": device_gate("a")}).json()["id"]
        wait_for(lambda: (gates / "a.started").exists(), what="the first run's node to hold the device")
        second = http.post("/api/runs", json={"graph": device_gate("b")}).json()["id"]
        wait_for(lambda: http.get(f"/api/runs/{second}").json()["status"] == "running",
                 what="the second run to start beside the first")
        assert not (gates / "b.started").exists()
        (gates / "a").write_text("open")
        wait_for(lambda: (gates / "b.started").exists(), what="the second run's node to get the device")
        (gates / "b").write_text("open")
        assert wait_finished(http, first)["status"] == wait_finished(http, second)["status"] == "succeeded"
        events = replayed(http)
    order = [(event["run"], event["kind"]) for event in events if event["kind"] in ("node.started", "node.finished")]
    assert order == [(first, "node.started"), (first, "node.finished"), (second, "node.started"),
                     (second, "node.finished")]
    assert {event["device"] for event in events if event["kind"] == "node.started"} == {"cpu:0"}


def replayed(http: httpx2.Client) -> list[dict[str, Any]]:
    """Every stored event in the server's global order (the all-runs stream, read until both runs finished)."""
    seen: list[dict[str, Any]] = []
    with http.stream("GET", "/api/events", params={"since": 0}) as response:
        buffer = ""
        for text in response.iter_text():
            buffer += text
            seen = [event["data"] for event in parse_sse(buffer)]
            if sum(event["kind"] == "run.finished" for event in seen) >= 2:
                break
    return seen
