"""One run record: the engine's pydantic model is what the run store persists, what ``GET /api/runs/{id}`` returns
and what the OpenAPI schema describes; events reach the server's listeners typed and the wire keeps their shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from nodeforge.engine.events import EVENTS, Event, NodeFinished, NodeStarted, RunFinished
from nodeforge.engine.record import RunRecord
from nodeforge.server.schemas import RunSummary
from tests.server.support import parse_sse, text_graph, wait_finished

SERVER_ONLY = {"created_at", "events_url"}
"""What the API's record adds to the engine's: when the run was queued, where its events stream."""


def finished_run(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[RunRecord]]:
    """A finished text run, and the records the runner handed to the store."""
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    handed: list[RunRecord] = []
    finish = runtime.store.finish_run

    def capture(record: RunRecord, event_id: int, event: Event) -> None:
        handed.append(record.model_copy(deep=True))
        finish(record, event_id, event)

    monkeypatch.setattr(runtime.store, "finish_run", capture)
    run_id = client.post("/api/runs", json={"graph": text_graph(), "inputs": {"who": "Grace"}}).json()["id"]
    assert wait_finished(client, run_id)["status"] == "succeeded"
    return run_id, handed


def test_the_api_returns_the_record_the_store_persisted(client: TestClient,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, handed = finished_run(client, monkeypatch)
    body = client.get(f"/api/runs/{run_id}").json()
    stored = client.app.state.runtime.store.run(run_id)  # type: ignore[attr-defined]
    assert body == stored.model_dump(mode="json") == json.loads(stored.model_dump_json())
    [engine] = [record.model_dump(mode="json") for record in handed]
    shown = {key: value for key, value in body.items() if key not in SERVER_ONLY}
    assert set(shown) == set(engine)
    assert shown | {"started_at": None} == engine | {"started_at": None}  # the server's start is when it claimed
    assert body["outputs"] == {"text": "Hello, Grace!"} and body["nodes"]["greet"]["status"] == "succeeded"
    assert body["events_url"] == f"/api/runs/{run_id}/events" and body["created_at"] <= body["started_at"]


def test_the_history_lists_the_records_head(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, _ = finished_run(client, monkeypatch)
    body = client.get(f"/api/runs/{run_id}").json()
    [listed] = client.get("/api/runs").json()["runs"]
    assert set(listed) == set(RunSummary.model_json_schema(mode="serialization")["properties"])
    assert listed == {key: body[key] for key in listed}


def test_the_openapi_schema_describes_the_record_the_api_returns(client: TestClient,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, _ = finished_run(client, monkeypatch)
    body = client.get(f"/api/runs/{run_id}").json()
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    view = schemas["RunView"]
    assert set(view["properties"]) == set(view["required"]) == set(body)
    node = schemas[view["properties"]["nodes"]["additionalProperties"]["$ref"].rsplit("/", 1)[1]]
    assert set(node["properties"]) == set(node["required"]) == set(body["nodes"]["greet"])


def test_the_servers_listeners_get_typed_events_and_the_stream_their_wire_shape(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    seen: list[Event] = []
    record = runtime.events.record

    def listen(event: Event) -> int:
        seen.append(event)
        return record(event)

    monkeypatch.setattr(runtime.events, "record", listen)
    run_id, _ = finished_run(client, monkeypatch)
    steps: list[str] = []
    for event in seen:
        match event.data:
            case NodeStarted(node=node, node_type=node_type):
                steps.append(f"{node} ({node_type}) started")
            case NodeFinished(node=node):
                steps.append(f"{node} finished")
    assert steps == ["greet (text.template) started", "greet finished"]
    streamed: list[dict[str, Any]] = [item["data"] for item in parse_sse(client.get(f"/api/runs/{run_id}/events").text)]
    assert [event["kind"] for event in streamed] == ["run.queued", "run.started", "node.started", "node.finished",
                                                     "run.finished"]
    assert [event.to_dict() for event in seen] == [wire for wire in streamed if wire["kind"] in
                                                   ("run.started", "node.started", "node.finished")]
    for wire in streamed:  # the typed event writes the very bytes that were stored and sent
        assert json.dumps(EVENTS.parse(wire).to_dict()) == json.dumps(wire)
    assert EVENTS.parse(streamed[-1]).data == RunFinished(status="succeeded")
