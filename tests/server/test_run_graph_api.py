"""GET /api/runs/{id}/graph: the document a run was submitted with (the editor reopens past runs from it)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.server.support import text_graph, wait_finished


def test_a_run_returns_the_graph_it_was_submitted_with(client: TestClient) -> None:
    document = text_graph()
    document["ui"] = {"positions": {"greet": [10, 20]}}
    run_id = client.post("/api/runs", json={"graph": document, "inputs": {"who": "Lin"}}).json()["id"]
    wait_finished(client, run_id)
    graph = client.get(f"/api/runs/{run_id}/graph")
    assert graph.status_code == 200
    body = graph.json()
    assert body["nodes"]["greet"]["inputs"] == document["nodes"]["greet"]["inputs"]
    assert body["inputs"]["who"]["default"] == "Ada" and body["outputs"]["text"]["from"] == "greet.text"
    assert body["ui"] == {"positions": {"greet": [10, 20]}}


def test_a_saved_graph_run_keeps_its_document_and_unknown_runs_are_404(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={"graph": "hello"}).json()["id"]
    assert client.get(f"/api/runs/{run_id}/graph").json()["name"] == "hello"
    missing = client.get("/api/runs/nope/graph")
    assert missing.status_code == 404 and "no run" in missing.json()["detail"]
