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


def _store_refuses_writes(monkeypatch, refused: threading.Event) -> None:
    """Every write of the run store fails as SQLite's do on a full disk while ``refused`` is set (injected where
    the writer thread runs each write, so whole batches fail and roll back as they would)."""
    import sqlite3

    from nodeforge.server import run_store

    original = run_store._run_op

    def run_op(db, fn, future):
        if refused.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        return original(db, fn, future)

    monkeypatch.setattr(run_store, "_run_op", run_op)


def test_a_disk_that_fills_during_a_run_fails_it_and_refuses_submissions_until_space_is_back(
        client: TestClient, gates: Path, monkeypatch) -> None:
    refused = threading.Event()
    _store_refuses_writes(monkeypatch, refused)
    run_id = client.post("/api/runs", json={"graph": gate_graph("full")}).json()["id"]
    wait_for(lambda: (gates / "full.started").exists(), what="the gate node to start")
    refused.set()
    (gates / "full").write_text("go")
    record = wait_finished(client, run_id)
    assert record["status"] == "failed" and "could not be stored" in record["error"]
    assert "disk is full" in record["error"]
    events = parse_sse(client.get(f"/api/runs/{run_id}/events").text)  # returns: the stream ends
    assert events[-1]["data"]["kind"] == "run.finished" and events[-1]["data"]["status"] == "failed"
    refused_submission = client.post("/api/runs", json={"graph": text_graph(), "inputs": {"who": "Ada"}})
    assert refused_submission.status_code == 507, refused_submission.text
    assert "disk is full" in refused_submission.json()["detail"]
    assert refused_submission.headers["Retry-After"]
    refused.clear()
    runtime = client.app.state.runtime
    wait_for(lambda: runtime.store.run_row(run_id)["status"] == "failed", what="the run's end to be stored")
    stored = [event["data"] for event in parse_sse(client.get(f"/api/runs/{run_id}/events").text)]
    assert stored[-1]["kind"] == "run.finished" and stored[-1]["status"] == "failed"
    later = client.post("/api/runs", json={"graph": text_graph(), "inputs": {"who": "Ada"}})
    assert later.status_code == 202
    assert wait_finished(client, later.json()["id"])["outputs"] == {"text": "Hello, Ada!"}


def test_an_output_the_disk_cannot_take_fails_the_run_naming_it(client: TestClient, monkeypatch) -> None:
    import errno

    from nodeforge.engine import media_io

    def full(image, path, metadata=None):
        path.write_bytes(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(media_io, "write_png", full)
    document = {"nodes": {"draw": {"type": "test.picture", "inputs": {"size": 8}}},
                "outputs": {"picture": {"from": "draw.image"}}}
    run_id = client.post("/api/runs", json={"graph": document}).json()["id"]
    record = wait_finished(client, run_id)
    assert record["status"] == "failed", record
    assert record["error"].startswith("output 'picture' of node 'draw' could not be written: the disk is full")
    assert record["nodes"]["draw"]["status"] == "succeeded" and record["outputs"] == {}
    finished = parse_sse(client.get(f"/api/runs/{run_id}/events").text)[-1]["data"]
    assert finished["kind"] == "run.finished" and finished["status"] == "failed"
    runtime = client.app.state.runtime
    assert not runtime.artifacts.run_folder(run_id).exists()  # the half-written file gave its space back


def test_a_cache_entry_the_disk_cannot_take_fails_its_node_with_the_reason(client: TestClient, monkeypatch) -> None:
    import errno

    from nodeforge.engine import cache

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cache, "_write_atomically", full)
    document = {"nodes": {"draw": {"type": "test.picture", "inputs": {"size": 8, "seed": 3}},
                          "size": {"type": "test.measure", "inputs": {"image": {"from": "draw.image"}}}}}
    record = wait_finished(client, client.post("/api/runs", json={"graph": document}).json()["id"])
    assert record["status"] == "failed"
    assert record["nodes"]["draw"]["error"].startswith("node 'draw' (test.picture): the disk is full writing ")
    assert record["nodes"]["size"]["status"] == "skipped"
