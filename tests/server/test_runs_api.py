"""Runs over HTTP: submission and validation, history, records, cancellation, and their event streams."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx2
from starlette.testclient import TestClient

from nodeforge.engine.events import Event, NodeProgress, NodesCached, RunQueued
from nodeforge.server.app import create_app
from nodeforge.server.run_store import NewRun, RunStore
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, gate_graph, parse_sse, text_graph, wait_finished, wait_for


def test_submit_a_saved_graph_by_name(client: TestClient) -> None:
    response = client.post("/api/runs", json={"graph": "hello", "inputs": {"name": "Grace"}})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] in ("queued", "running", "succeeded") and body["created"] is True
    assert body["url"] == f"/api/runs/{body['id']}"
    record = wait_finished(client, body["id"])
    assert record["status"] == "succeeded" and record["graph"] == "hello"
    assert record["outputs"] == {"message": "Hello, Grace! See you soon."}
    assert record["inputs"] == {"name": "Grace"}
    assert {node["status"] for node in record["nodes"].values()} == {"succeeded"}
    assert all(node["started_at"] and node["device"] == "cpu" for node in record["nodes"].values())


def test_submit_an_inline_document(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={"graph": text_graph(), "inputs": {"who": "Lin"}}).json()["id"]
    assert wait_finished(client, run_id)["outputs"] == {"text": "Hello, Lin!"}


def test_invalid_submissions_list_every_issue_and_queue_nothing(client: TestClient) -> None:
    document = text_graph()
    document["nodes"]["extra"] = {"type": "text.join", "inputs": {"texts": {"from": "nowhere.text"}}}
    response = client.post("/api/runs", json={"graph": document, "inputs": {"who": 5, "whom": "x"}})
    assert response.status_code == 422
    issues = {(issue["node"], issue["input"], issue["code"]) for issue in response.json()["issues"]}
    assert ("extra", "texts", "missing_node") in issues
    bad_inputs = client.post("/api/runs", json={"graph": text_graph(), "inputs": {"who": 5, "whom": "x"}})
    assert bad_inputs.status_code == 422
    assert {(i["input"], i["code"]) for i in bad_inputs.json()["issues"]} == {
        ("whom", "unknown_graph_input"), ("who", "invalid_graph_input")}
    assert client.get("/api/runs").json()["total"] == 0


def test_an_empty_graph_is_refused_with_nothing_to_run(client: TestClient) -> None:
    response = client.post("/api/runs", json={"graph": {"name": "blank", "nodes": {}}})
    assert response.status_code == 422
    assert [(i["code"], i["message"]) for i in response.json()["issues"]] == [
        ("empty_graph", "the graph has no nodes: there is nothing to run")]
    assert client.get("/api/runs").json()["total"] == 0


def test_missing_required_input_unknown_graph_and_bad_body(client: TestClient) -> None:
    document = text_graph()
    document["inputs"]["who"] = {"type": "text"}
    missing = client.post("/api/runs", json={"graph": document})
    assert missing.status_code == 422 and missing.json()["issues"][0]["code"] == "missing_graph_input"
    unknown = client.post("/api/runs", json={"graph": "no-such-graph"})
    assert unknown.status_code == 404 and "no saved graph" in unknown.json()["detail"]
    assert client.post("/api/runs", json={"inputs": {}}).status_code == 422
    assert client.post("/api/runs", json={"graph": 3}).status_code == 422
    assert client.post("/api/runs", json={"graph": "hello", "surprise": 1}).status_code == 422


def test_history_filters_and_pages(client: TestClient) -> None:
    ids = [client.post("/api/runs", json={"graph": "hello", "inputs": {"name": str(i)}}).json()["id"]
           for i in range(5)]
    for run_id in ids:
        wait_finished(client, run_id)
    failing = client.post("/api/runs", json={"graph": {"nodes": {"w": {"type": "test.measure", "inputs": {
        "image": {"input": "img"}}}}, "inputs": {"img": {"type": "image"}}}, "inputs": {"img": "0" * 32}})
    assert failing.status_code == 422
    page = client.get("/api/runs", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and page["limit"] == 2 and [run["id"] for run in page["runs"]] == ids[::-1][1:3]
    assert client.get("/api/runs", params={"status": "succeeded"}).json()["total"] == 5
    assert client.get("/api/runs", params={"status": "queued"}).json()["runs"] == []
    assert client.get("/api/runs", params={"status": "bogus"}).status_code == 422
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422
    assert client.get("/api/runs/nope").status_code == 404


def test_a_failing_node_is_recorded_with_its_error(client: TestClient) -> None:
    document = {"nodes": {"t": {"type": "text.template", "inputs": {"template": "{a}", "a": {"input": "a"}}},
                          "ok": {"type": "text.value", "inputs": {"value": "fine"}}},
                "inputs": {"a": {"type": "text", "default": "x"}},
                "outputs": {"t": {"from": "t.text"}, "ok": {"from": "ok.text"}}}
    run_id = client.post("/api/runs", json={"graph": document, "inputs": {"a": "{"}}).json()["id"]
    record = wait_finished(client, run_id)
    assert record["status"] == "succeeded" and record["outputs"] == {"t": "{", "ok": "fine"}
    gate_doc = gate_graph("never")
    gate_doc["nodes"]["wait"]["inputs"]["x"] = "not a number"
    assert client.post("/api/runs", json={"graph": gate_doc}).status_code == 422


def test_the_run_store_marks_the_nodes_one_cached_event_lists(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    try:
        queued = Event("r1", 1, 1.0, RunQueued())
        store.create_run(NewRun("r1", "g", {}, {}, {"a": "text.value", "b": "text.join", "c": "text.value"}), 1,
                         queued, queue_limit=10)
        store.append_event(2, Event("r1", 2, 2.0, NodesCached(nodes=("a", "b"))))
        store.barrier()
        stored = store.run("r1")
        assert stored is not None
        assert {node_id: node.status for node_id, node in stored.nodes.items()} == {
            "a": "cached", "b": "cached", "c": "pending"}
        assert list(store.run_events("r1", 0)) == [
            {"kind": "run.queued", "run": "r1", "seq": 1, "at": 1.0},
            {"kind": "nodes.cached", "run": "r1", "seq": 2, "at": 2.0, "nodes": ["a", "b"]}]
    finally:
        store.close()


def test_outputs_are_recorded_the_same_with_or_without_listeners(client: TestClient) -> None:
    first = client.post("/api/runs", json={"graph": "hello"}).json()["id"]
    events = parse_sse(client.get(f"/api/runs/{first}/events").text)
    second = client.post("/api/runs", json={"graph": "hello"}).json()["id"]
    one, two = wait_finished(client, first), wait_finished(client, second)
    assert one["outputs"] == two["outputs"] == {"message": "Hello, Ada! See you soon."}
    assert {node["status"] for node in two["nodes"].values()} == {"cached"}
    assert events[-1]["data"]["kind"] == "run.finished"


def test_idempotency_key_returns_the_same_run(client: TestClient) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/api/runs", json={"graph": "hello"}, headers=headers).json()
    again = client.post("/api/runs", json={"graph": "hello"}, headers=headers).json()
    assert again["id"] == first["id"] and first["created"] is True and again["created"] is False
    assert client.get("/api/runs").json()["total"] == 1


def test_cancel_a_running_and_a_queued_run(client: TestClient, gates: Path) -> None:
    running = client.post("/api/runs", json={"graph": gate_graph("a")}).json()["id"]
    queued = client.post("/api/runs", json={"graph": gate_graph("b")}).json()["id"]
    wait_for(lambda: (gates / "a.started").exists(), what="the gate node to start")
    assert client.get(f"/api/runs/{queued}").json()["status"] == "queued"
    assert client.post(f"/api/runs/{queued}/cancel").json() == {"id": queued, "status": "cancelled"}
    assert client.post(f"/api/runs/{running}/cancel").json() == {"id": running, "status": "cancelling"}
    record = wait_finished(client, running)
    assert record["status"] == "cancelled" and record["nodes"]["wait"]["status"] == "cancelled"
    queued_record = client.get(f"/api/runs/{queued}").json()
    assert queued_record["status"] == "cancelled" and queued_record["error"] == "cancelled before it started"
    assert not (gates / "b.started").exists()
    finished = client.post(f"/api/runs/{running}/cancel")
    assert finished.status_code == 409 and "already finished" in finished.json()["detail"]
    assert client.post("/api/runs/unknown/cancel").status_code == 404
    kinds = [event["data"]["kind"] for event in parse_sse(client.get(f"/api/runs/{queued}/events").text)]
    assert kinds == ["run.queued", "run.finished"]


def test_late_listener_gets_the_whole_run_replayed(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={"graph": "hello"}).json()["id"]
    wait_finished(client, run_id)
    events = parse_sse(client.get(f"/api/runs/{run_id}/events").text)
    kinds = [event["data"]["kind"] for event in events]
    assert kinds[:2] == ["run.queued", "run.started"] and kinds[-1] == "run.finished"
    assert kinds.count("node.finished") == 3
    assert [event["id"] for event in events] == list(range(len(events)))
    assert events[-1]["data"]["status"] == "succeeded"
    resumed = parse_sse(client.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "3"}).text)
    assert [event["id"] for event in resumed] == list(range(4, len(events)))
    assert client.get("/api/runs/missing/events").status_code == 404


def test_live_stream_with_heartbeats_then_replay_equals_live(settings: Settings, gates: Path) -> None:
    with LiveServer(create_app(settings)) as live, httpx2.Client(base_url=live.url, timeout=30) as http:
        http.post("/api/runs", json={"graph": gate_graph("first")})
        run_id = http.post("/api/runs", json={"graph": gate_graph("live")}).json()["id"]
        chunks: list[str] = []

        def listen() -> None:
            with http.stream("GET", f"/api/runs/{run_id}/events") as response:
                for text in response.iter_text():
                    chunks.append(text)

        listener = threading.Thread(target=listen)
        listener.start()
        wait_for(lambda: ": heartbeat" in "".join(chunks), what="a heartbeat while the run waits in the queue")
        (gates / "first").write_text("open")
        wait_for(lambda: (gates / "live.started").exists(), what="the gate")
        (gates / "live").write_text("open")
        listener.join(timeout=30)
        live_events = parse_sse("".join(chunks))
        assert live_events[-1]["data"]["kind"] == "run.finished"
        assert any(event["data"]["kind"] == "node.progress" for event in live_events)
        replay = parse_sse(http.get(f"/api/runs/{run_id}/events").text)
        assert replay == live_events
        assert all(len(str(event["data"])) < 400 for event in replay)


def test_all_runs_stream(settings: Settings, gates: Path) -> None:
    with LiveServer(create_app(settings)) as live, httpx2.Client(base_url=live.url, timeout=30) as http:
        earlier = http.post("/api/runs", json={"graph": "hello"}).json()["id"]
        wait_finished(http, earlier)
        seen: list[dict] = []
        connected = threading.Event()

        def listen() -> None:
            with http.stream("GET", "/api/events", params={"since": 0}) as response:
                buffer = ""
                for text in response.iter_text():
                    buffer += text
                    connected.set()
                    seen[:] = parse_sse(buffer)
                    if sum(e["data"]["kind"] == "run.finished" for e in seen) >= 2:
                        return

        listener = threading.Thread(target=listen)
        listener.start()
        connected.wait(10)
        later = http.post("/api/runs", json={"graph": gate_graph("g")}).json()["id"]
        (gates / "g").write_text("open")
        listener.join(timeout=30)
        runs = {event["data"]["run"] for event in seen}
        assert runs == {earlier, later}
        ids = [event["id"] for event in seen]
        assert len(ids) == len(set(ids))


def test_a_submitted_run_is_validated_and_compiled_once(client: TestClient, monkeypatch) -> None:
    import nodeforge.engine.session as session_module
    import nodeforge.server.runtime as runtime_module

    compiled: list[str] = []

    def counting(original):
        def compile_graph(document, env):
            compiled.append(document.name)
            return original(document, env)
        return compile_graph

    monkeypatch.setattr(runtime_module, "compile_graph", counting(runtime_module.compile_graph))
    monkeypatch.setattr(session_module, "compile_graph", counting(session_module.compile_graph))
    run_id = client.post("/api/runs", json={"graph": text_graph(), "inputs": {"who": "Lin"}}).json()["id"]
    assert wait_finished(client, run_id)["outputs"] == {"text": "Hello, Lin!"}
    assert compiled == ["greet"]


def _denoise(steps: int) -> dict[str, object]:
    return {"nodes": {"draw": {"type": "image.generate", "inputs": {
        "prompt": "a fox", "model": "tiny/sd", "width": 64, "height": 64, "steps": steps, "guidance_scale": 1.0}}}}


def test_cancelling_stops_a_denoise_at_the_next_step(client: TestClient, shared_models_dir: Path,
                                                     monkeypatch) -> None:
    """The first step's progress event holds the denoise until the cancel has been answered: the next step
    boundary must stop it."""
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    runtime = client.app.state.runtime
    answered = threading.Event()
    record_event = runtime.events.record

    def record(event: Event) -> int:
        event_id = record_event(event)
        if isinstance(event.data, NodeProgress):
            assert answered.wait(timeout=60), "the test never cancelled"
        return event_id

    monkeypatch.setattr(runtime.events, "record", record)
    run_id = client.post("/api/runs", json={"graph": _denoise(steps=200)}).json()["id"]
    with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
        for line in stream.iter_lines():
            if '"node.progress"' in line:
                break
    assert client.post(f"/api/runs/{run_id}/cancel").json()["status"] == "cancelling"
    answered.set()
    record = wait_finished(client, run_id)
    assert record["status"] == "cancelled" and record["nodes"]["draw"]["status"] == "cancelled"
    events = [event["data"] for event in parse_sse(client.get(f"/api/runs/{run_id}/events").text)]
    assert [event["step"] for event in events if event["kind"] == "node.progress"] == [1]


def test_cancelling_stops_a_denoise_inside_a_step(client: TestClient, shared_models_dir: Path, monkeypatch) -> None:
    """A step of a large picture can take minutes: a cancel that arrives while the UNet is inside its first step
    stops it there, before the step ends."""
    from diffusers import UNet2DConditionModel

    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    runtime = client.app.state.runtime
    forward = UNet2DConditionModel.forward
    entered: list[str] = []
    completed: list[str] = []

    def cancel_inside(self, *args, **kwargs):
        entered.extend(runtime.runner.active())
        for run_id in runtime.runner.active():
            assert runtime.cancel(run_id) == ("cancelling", True)
        result = forward(self, *args, **kwargs)
        completed.append("step")
        return result

    monkeypatch.setattr(UNet2DConditionModel, "forward", cancel_inside)
    run_id = client.post("/api/runs", json={"graph": _denoise(steps=50)}).json()["id"]
    record = wait_finished(client, run_id)
    assert entered == [run_id]
    assert record["status"] == "cancelled" and completed == []
    kinds = [event["data"]["kind"] for event in parse_sse(client.get(f"/api/runs/{run_id}/events").text)]
    assert "node.progress" not in kinds
