"""Bounded input through a real server: data nested too deeply and graphs that call each other are refused with a
4xx naming what is wrong, never a 500, and nothing is saved or queued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, text_graph

DEEP = "nested deeper than 64 levels"


def nested_list(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def nested_dict(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def calling(graph: str) -> dict[str, Any]:
    return {"nodes": {"call": {"type": "graph.call", "inputs": {"graph": graph}}}}


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx2.Client]:
    with LiveServer(create_app(settings)) as live, httpx2.Client(base_url=live.url, timeout=30) as client:
        yield client


def issues(response: httpx2.Response) -> list[tuple[Any, ...]]:
    return [(i["node"], i["input"], i["code"], i["message"]) for i in response.json()["issues"]]


def test_deeply_nested_documents_are_422_naming_the_place(http: httpx2.Client) -> None:
    in_input = text_graph()
    in_input["nodes"]["deep"] = {"type": "text.value", "inputs": {"value": nested_list(500)}}
    in_ui = {**text_graph(), "ui": nested_dict(256)}
    in_default = text_graph()
    in_default["inputs"]["extra"] = {"type": "json", "default": nested_list(500)}
    cases = [(in_input, ("deep", "value", "too_deep", f"nodes.deep.inputs.value: {DEEP}")),
             (in_ui, (None, None, "too_deep", f"ui: {DEEP}")),
             (in_default, (None, "extra", "too_deep", f"inputs.extra.default: {DEEP}"))]
    for document, expected in cases:
        run = http.post("/api/runs", json={"graph": document})
        assert run.status_code == 422 and issues(run) == [expected], run.text
        saved = http.put("/api/graphs/deep", json=document)
        assert saved.status_code == 422 and issues(saved) == [expected], saved.text
    assert http.get("/api/graphs/deep").status_code == 404
    assert http.get("/api/runs").json()["total"] == 0


def test_the_limit_is_64_levels(http: httpx2.Client) -> None:
    assert http.put("/api/graphs/edge", json={**text_graph(), "ui": nested_dict(64)}).status_code == 201
    refused = http.put("/api/graphs/edge", json={**text_graph(), "ui": nested_dict(65)})
    assert refused.status_code == 422 and issues(refused) == [(None, None, "too_deep", f"ui: {DEEP}")]


def test_deeply_nested_run_inputs_are_422(http: httpx2.Client) -> None:
    document = text_graph()
    document["inputs"]["extra"] = {"type": "json", "default": []}
    run = http.post("/api/runs", json={"graph": document, "inputs": {"extra": nested_list(500)}})
    assert run.status_code == 422 and issues(run) == [(None, "extra", "too_deep", f"graph input 'extra': {DEEP}")]
    assert http.get("/api/runs").json()["total"] == 0


def test_graphs_that_call_each_other_are_not_saved(http: httpx2.Client) -> None:
    assert http.put("/api/graphs/a", json=text_graph("a")).status_code == 201
    assert http.put("/api/graphs/b", json=calling("a")).status_code == 201
    refused = http.put("/api/graphs/a", json=calling("b"))
    assert refused.status_code == 422, refused.text
    assert issues(refused) == [("call", "graph", "recursion", "graph.call recursion: a -> b -> a")]
    assert http.get("/api/graphs/a").json()["nodes"]["greet"]["type"] == "text.template"


def test_a_graph_that_calls_itself_is_not_saved(http: httpx2.Client) -> None:
    refused = http.put("/api/graphs/loop", json=calling("loop"))
    assert refused.status_code == 422, refused.text
    assert issues(refused) == [("call", "graph", "recursion", "graph.call recursion: loop -> loop")]
    assert http.get("/api/graphs/loop").status_code == 404


def test_a_cycle_already_on_disk_is_422_when_run(http: httpx2.Client, settings: Settings) -> None:
    folder = settings.data_dir / "graphs"
    (folder / "a.json").write_text(json.dumps(calling("b")))
    (folder / "b.json").write_text(json.dumps(calling("a")))
    run = http.post("/api/runs", json={"graph": "a"})
    assert run.status_code == 422, run.text
    assert issues(run) == [("call", "graph", "recursion", "graph.call recursion: a -> b -> a")]
