"""Event streams over real HTTP: streamed text as O(1) deltas, streams that end once their run has, and a server
that stops cleanly with streams open."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from nodeforge.engine.cli import EXIT_CANCELLED
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

HEARTBEAT = b": heartbeat"


@pytest.fixture
def live(settings: Settings, shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    with LiveServer(create_app(settings)) as server:
        yield server


def llm_graph(tokens: int) -> dict[str, Any]:
    return {"name": f"llm-{tokens}", "nodes": {"llm": {"type": "llm.generate", "inputs": {
        "prompt": "Tell me about foxes", "max_new_tokens": tokens, "temperature": 0.8, "seed": 3}}},
            "outputs": {"text": {"from": "llm.text"}}}


def generated(http: httpx2.Client, tokens: int) -> tuple[str, list[dict[str, Any]], int]:
    """The run's text (from its record), its progress events, and the SSE bytes those events took."""
    run_id = http.post("/api/runs", json={"graph": llm_graph(tokens)}).json()["id"]
    body = http.get(f"/api/runs/{run_id}/events").content
    record = wait_finished(http, run_id)
    assert record["status"] == "succeeded", record["error"]
    frames = [frame for frame in body.split(b"\n\n") if b'"kind":"node.progress"' in frame]
    progress = [event["data"] for event in parse_sse(body.decode())
                if event["data"]["kind"] == "node.progress"]
    return record["outputs"]["text"], progress, sum(len(frame) + 2 for frame in frames)


def until_end_or_heartbeats(response: httpx2.Response, heartbeats: int, armed: Any = lambda: True) -> bytes:
    """The stream's bytes until it ends, or until ``heartbeats`` heartbeats came while ``armed()`` (a stream
    that should have ended idles instead, so the test cannot hang)."""
    body, seen = b"", 0
    for chunk in response.iter_raw():
        body += chunk
        if HEARTBEAT in chunk and armed():
            seen += chunk.count(HEARTBEAT)
            if seen >= heartbeats:
                break
    return body


def test_llm_text_streams_as_deltas_whose_bytes_per_token_stay_flat(live: LiveServer) -> None:
    pytest.importorskip("transformers")
    with httpx2.Client(base_url=live.url, timeout=120) as http:
        short_text, short, short_bytes = generated(http, 16)
        long_text, long, long_bytes = generated(http, 64)
    short_tokens, long_tokens = short[-1]["step"], long[-1]["step"]
    assert long_tokens >= 3 * short_tokens, "the long answer ended early: pick another seed"
    per_token_short, per_token_long = short_bytes / short_tokens, long_bytes / long_tokens
    assert per_token_long < 1.15 * per_token_short, (per_token_short, per_token_long)
    for text, progress in ((short_text, short), (long_text, long)):
        assert "".join(event.get("delta", "") for event in progress) == text and text.strip()
        assert all("text" not in event for event in progress)


def test_last_event_id_at_or_past_a_finished_runs_end_answers_204_at_once(live: LiveServer) -> None:
    with httpx2.Client(base_url=live.url, timeout=30) as http:
        run_id = http.post("/api/runs", json={"graph": text_graph()}).json()["id"]
        wait_finished(http, run_id)
        last = parse_sse(http.get(f"/api/runs/{run_id}/events").text)[-1]
        assert last["data"]["kind"] == "run.finished"
        resumed = parse_sse(http.get(f"/api/runs/{run_id}/events",
                                     headers={"Last-Event-ID": str(last["id"] - 1)}).text)
        assert [event["id"] for event in resumed] == [last["id"]]
        for seen in (last["id"], last["id"] + 7):
            with http.stream("GET", f"/api/runs/{run_id}/events",
                             headers={"Last-Event-ID": str(seen)}) as response:
                body = until_end_or_heartbeats(response, 1)
                assert (response.status_code, body) == (204, b""), seen


def test_a_stream_resumed_past_a_running_runs_end_closes_when_the_run_finishes(live: LiveServer,
                                                                                 gates: Path) -> None:
    with httpx2.Client(base_url=live.url, timeout=30) as http:
        run_id = http.post("/api/runs", json={"graph": gate_graph("past")}).json()["id"]
        wait_for(lambda: (gates / "past.started").exists(), what="the gate")
        finished = threading.Event()

        def release() -> None:
            (gates / "past").write_text("open")
            wait_finished(http, run_id)
            finished.set()

        with http.stream("GET", f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "100000"}) as response:
            opener = threading.Thread(target=release)
            opener.start()
            body = until_end_or_heartbeats(response, 3, armed=finished.is_set)
            opener.join(timeout=30)
    assert finished.is_set()
    assert parse_sse(body.decode()) == []
    assert body.count(HEARTBEAT) < 3


def test_stopping_the_server_ends_open_streams_without_a_traceback(tmp_path: Path, gates: Path) -> None:
    port = free_port()
    with server_process(tmp_path / "data", gates, port) as process, \
            httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        run_id = http.post("/api/runs", json={"graph": gate_graph("held")}).json()["id"]
        wait_for(lambda: (gates / "held.started").exists(), what="the gate")  # the run is running when stopped
        with http.stream("GET", "/api/events") as every, \
                http.stream("GET", f"/api/runs/{run_id}/events") as one:
            every_chunks = every.iter_raw()
            assert b": connected" in next(every_chunks)
            one_chunks = one.iter_raw()
            assert b"run.queued" in next(one_chunks)
            process.send_signal(signal.SIGINT)
            rest = b"".join(every_chunks) + b"".join(one_chunks)
        assert process.wait(timeout=60) == EXIT_CANCELLED
        errors = process.stderr.read().decode() if process.stderr else ""
    assert HEARTBEAT not in rest
    assert "Traceback" not in errors and "ERROR" not in errors, errors
