"""The run queue survives a killed server; concurrent clients lose and duplicate nothing."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx2
from starlette.testclient import TestClient

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import (
    LiveServer,
    free_port,
    gate_graph,
    parse_sse,
    server_process,
    text_graph,
    wait_finished,
    wait_for,
)


def test_a_killed_server_interrupts_the_running_run_and_keeps_the_queue(tmp_path: Path, gates: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process(data_dir, gates, port) as process, httpx2.Client(base_url=base, timeout=30) as http:
        assert http.put("/api/graphs/keep", json=text_graph("keep")).status_code == 201
        held = http.post("/api/runs", json={"graph": gate_graph("held")}).json()["id"]
        queued = [http.post("/api/runs", json={"graph": "keep", "inputs": {"who": str(i)}}).json()["id"]
                  for i in range(3)]
        wait_for(lambda: (gates / "held.started").exists(), what="the held run to start")
        wait_for(lambda: http.get(f"/api/runs/{held}").json()["nodes"]["wait"]["status"] == "running",
                 what="the node state to be stored")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    with server_process(data_dir, gates, port), httpx2.Client(base_url=base, timeout=30) as http:
        record = http.get(f"/api/runs/{held}").json()
        assert record["status"] == "interrupted"
        assert "stopped while the run was running" in record["error"]
        assert record["nodes"]["wait"]["status"] == "cancelled"
        assert record["nodes"]["wait"]["error"].startswith("interrupted")
        kinds = [event["data"]["kind"] for event in parse_sse(http.get(f"/api/runs/{held}/events").text)]
        assert kinds[:3] == ["run.queued", "run.started", "node.started"] and kinds[-1] == "run.finished"
        assert parse_sse(http.get(f"/api/runs/{held}/events").text)[-1]["data"]["status"] == "interrupted"
        outputs = [wait_finished(http, run_id)["outputs"] for run_id in queued]
        assert outputs == [{"text": f"Hello, {i}!"} for i in range(3)]
        saved = http.get("/api/graphs/keep").json()["nodes"]["greet"]
        assert saved["inputs"] == text_graph("keep")["nodes"]["greet"]["inputs"] and saved["version"] == "1.0.0"
        assert http.get("/api/runs").json()["total"] == 4


def test_two_hundred_runs_from_twenty_clients(settings: Settings) -> None:
    with LiveServer(create_app(settings)) as live:
        submitted: list[tuple[str, str]] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            with httpx2.Client(base_url=live.url, timeout=60) as http:
                for turn in range(10):
                    who = f"c{index}-r{turn}"
                    response = http.post("/api/runs", json={"graph": text_graph(), "inputs": {"who": who}})
                    assert response.status_code == 202
                    with lock:
                        submitted.append((response.json()["id"], who))

        threads = [threading.Thread(target=client, args=(index,)) for index in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(submitted) == 200 and len({run_id for run_id, _ in submitted}) == 200
        with httpx2.Client(base_url=live.url, timeout=60) as http:
            deadline = time.monotonic() + 120
            while http.get("/api/runs", params={"status": "succeeded", "limit": 1}).json()["total"] < 200:
                assert time.monotonic() < deadline, "not every run finished"
                time.sleep(0.1)
            listing = http.get("/api/runs", params={"limit": 500}).json()
            assert listing["total"] == 200
            assert {run["status"] for run in listing["runs"]} == {"succeeded"}
            for run_id, who in submitted[::20]:
                assert http.get(f"/api/runs/{run_id}").json()["outputs"] == {"text": f"Hello, {who}!"}
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as again:
        assert again.get("/api/runs").json()["total"] == 200


def test_a_stopped_server_records_the_running_run_as_interrupted(tmp_path: Path, gates: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with server_process(data_dir, gates, port) as process, httpx2.Client(base_url=base, timeout=30) as http:
        held = http.post("/api/runs", json={"graph": gate_graph("held")}).json()["id"]
        waiting = http.post("/api/runs", json={"graph": gate_graph("later")}).json()["id"]
        wait_for(lambda: (gates / "held.started").exists(), what="the held run to start")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    (gates / "later").write_text("open")
    with server_process(data_dir, gates, port), httpx2.Client(base_url=base, timeout=30) as http:
        record = http.get(f"/api/runs/{held}").json()
        assert record["status"] == "interrupted" and record["error"] == "the server shut down while the run was running"
        assert record["nodes"]["wait"]["status"] == "cancelled"
        assert wait_finished(http, waiting)["outputs"] == {"value": 1}
