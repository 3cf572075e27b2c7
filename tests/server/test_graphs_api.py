"""The graph library over HTTP: listing, reading, validated atomic saves, deletes, hostile names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from nodeforge.server.library import GraphStore
from nodeforge.server.settings import Settings
from tests.server.support import text_graph


def test_examples_are_listed_read_only(client: TestClient) -> None:
    listing = client.get("/api/graphs").json()["graphs"]
    by_name = {entry["name"]: entry for entry in listing}
    assert by_name["hello"]["readonly"] is True
    assert by_name["hello"]["inputs"]["name"]["type"] == "text"
    assert "graph.schema" not in by_name
    response = client.get("/api/graphs/hello")
    assert response.status_code == 200 and response.headers["x-graph-readonly"] == "true"
    assert response.json()["nodes"]["greeting"]["type"] == "text.template"


def test_put_creates_then_replaces_and_get_returns_it(client: TestClient, settings: Settings) -> None:
    created = client.put("/api/graphs/greet", json=text_graph())
    assert created.status_code == 201 and created.json() == {"name": "greet", "created": True,
                                                             "url": "/api/graphs/greet"}
    replaced = client.put("/api/graphs/greet", json=text_graph(template="Hi {who}"))
    assert replaced.status_code == 200 and replaced.json()["created"] is False
    stored = client.get("/api/graphs/greet")
    assert stored.headers["x-graph-readonly"] == "false"
    assert stored.json()["nodes"]["greet"]["inputs"]["template"] == "Hi {who}"
    folder = settings.data_dir / "graphs"
    assert sorted(path.name for path in folder.iterdir()) == ["greet.json"]
    saved = json.loads((folder / "greet.json").read_text())
    assert saved["name"] == "greet" and saved["nodes"]["greet"]["version"] == "1.0.0"
    assert {"greet", "hello"} <= {entry["name"] for entry in client.get("/api/graphs").json()["graphs"]}


def test_put_of_an_invalid_graph_lists_every_issue_and_saves_nothing(client: TestClient, settings: Settings) -> None:
    broken = {"nodes": {
        "a": {"type": "text.template", "inputs": {"template": "{x} and {y}", "x": {"from": "ghost.text"}}},
        "b": {"type": "no.such_type"},
        "c": {"type": "text.join", "inputs": {"texts": ["a"], "separator": 3}},
    }}
    response = client.put("/api/graphs/broken", json=broken)
    assert response.status_code == 422
    issues = {(issue["node"], issue["input"], issue["code"]) for issue in response.json()["issues"]}
    assert issues == {("a", "y", "invalid_input"), ("a", "x", "missing_node"), ("b", None, "unknown_type"),
                      ("c", "separator", "invalid_literal")}
    assert all(issue["message"] for issue in response.json()["issues"])
    assert not (settings.data_dir / "graphs" / "broken.json").exists()
    assert client.get("/api/graphs/broken").status_code == 404


def test_put_of_a_malformed_document_is_422(client: TestClient) -> None:
    response = client.put("/api/graphs/x", json={"nodes": {"bad id!": {"type": "text.value"}}, "extra": 1})
    assert response.status_code == 422
    assert {issue["code"] for issue in response.json()["issues"]} == {"document"}
    not_json = client.put("/api/graphs/x", content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    a_list = client.put("/api/graphs/x", json=[1, 2])
    assert a_list.status_code == 422
    for kind in (["text.value"], {"a": 1}, 7):  # a node type that is no string: found by schemathesis as a 500
        odd = client.put("/api/graphs/x", json={"nodes": {"a": {"type": kind, "inputs": {}}}})
        assert odd.status_code == 422, (kind, odd.text)


def test_put_over_an_example_saves_a_copy_that_shadows_it(client: TestClient) -> None:
    document = client.get("/api/graphs/hello").json()
    document["description"] = "mine"
    assert client.put("/api/graphs/hello", json=document).status_code == 201
    assert client.get("/api/graphs/hello").headers["x-graph-readonly"] == "false"
    assert client.delete("/api/graphs/hello").status_code == 204
    assert client.get("/api/graphs/hello").headers["x-graph-readonly"] == "true"
    forbidden = client.delete("/api/graphs/hello")
    assert forbidden.status_code == 403 and "read-only" in forbidden.json()["detail"]


def test_delete(client: TestClient) -> None:
    client.put("/api/graphs/greet", json=text_graph())
    assert client.delete("/api/graphs/greet").status_code == 204
    assert client.delete("/api/graphs/greet").status_code == 404
    assert client.get("/api/graphs/greet").status_code == 404


def test_a_delete_that_loses_a_race_is_404(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two DELETEs of one graph: the one whose file goes between finding it and removing it answers 404."""
    client.put("/api/graphs/greet", json=text_graph())
    locate = GraphStore._locate

    def raced(self: GraphStore, name: str) -> tuple[Path, bool]:
        found = locate(self, name)
        found[0].unlink()  # the other request removes it now
        return found

    monkeypatch.setattr(GraphStore, "_locate", raced)
    response = client.delete("/api/graphs/greet")
    assert (response.status_code, response.json()) == (404, {"detail": "no saved graph named 'greet'"})


HOSTILE = ["..", ".hidden", "a..b", "..%2Fetc%2Fpasswd", "%2e%2e", "%2e%2e%2fsecrets", "a%00b", "a%0a", "x" * 101,
           "a%5Cb", "-dash", "name.json", "%E2%80%AEevil", "a%20b"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(client: TestClient, settings: Settings, name: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, f"/api/graphs/{name}", json=text_graph() if method == "PUT" else None)
        assert 400 <= response.status_code < 500, (method, name, response.status_code)
        assert response.status_code != 201
    run = client.post("/api/runs", json={"graph": name.replace("%2F", "/").replace("%00", "\x00")})
    assert 400 <= run.status_code < 500
    outside = [path for path in settings.data_dir.rglob("*") if path.suffix == ".json"]
    assert outside == []


def test_slash_in_a_name_never_reaches_the_file_system(client: TestClient, tmp_path) -> None:
    assert client.get("/api/graphs/../../etc/passwd").status_code == 404
    assert client.put("/api/graphs/a/b", json=text_graph()).status_code in (404, 405)


def test_a_hand_edited_unreadable_file_is_409(client: TestClient, settings: Settings) -> None:
    (settings.data_dir / "graphs" / "mangled.json").write_text("{oops")
    response = client.get("/api/graphs/mangled")
    assert response.status_code == 409 and "cannot be read" in response.json()["detail"]
    assert "mangled" not in {entry["name"] for entry in client.get("/api/graphs").json()["graphs"]}


def test_graph_documents_cannot_name_files_outside_allowed_folders(client: TestClient) -> None:
    document = {"nodes": {
        "load": {"type": "image.load", "inputs": {"path": "/etc/passwd"}},
        "draw": {"type": "image.generate", "inputs": {"prompt": "x", "model": "tiny/sd",
                                                      "loras": [{"model": "../../secret.safetensors"}]}},
        "save": {"type": "image.save", "inputs": {"image": {"from": "load.image"}, "folder": "/tmp"}},
        "words": {"type": "text.template", "inputs": {"template": "{path}", "path": "/etc/passwd"}},
    }}
    response = client.put("/api/graphs/paths", json=document)
    assert response.status_code == 422
    forbidden = {(i["node"], i["input"]) for i in response.json()["issues"] if i["code"] == "forbidden_path"}
    assert forbidden == {("load", "path"), ("draw", "loras"), ("save", "folder")}


def test_schema_and_catalogue(client: TestClient) -> None:
    schema = client.get("/api/schema/graph").json()
    assert schema["$id"] == "nodeforge/graph@1" and "nodes" in schema["properties"]
    catalogue = client.get("/api/nodes").json()
    types = {entry["type"]: entry for entry in catalogue["nodes"]}
    assert types["text.join"]["inputs"]["properties"]["texts"]["x-nodeforge-type"] == "list[text]"
    assert "test.gate" in types and catalogue["problems"] == []
    assert catalogue["node_status"]["nodes.cached"] == "cached"  # the editor applies the engine's rule
    assert catalogue["node_status"]["node.finished"] == "succeeded"


def test_every_example_graph_saves_and_its_assets_are_allowed(client: TestClient) -> None:
    names = [entry["name"] for entry in client.get("/api/graphs").json()["graphs"] if entry["readonly"]]
    assert "quickstart" in names
    for name in names:
        response = client.put(f"/api/graphs/copy-of-{name}", json=client.get(f"/api/graphs/{name}").json())
        assert response.status_code == 201, (name, response.json())


def test_relative_paths_cannot_climb_out_of_the_library(client: TestClient) -> None:
    for path in ("../../../../../../etc/passwd", "assets/../../../../../../etc/hostname", "~/.ssh/id_rsa"):
        document = {"nodes": {"n": {"type": "image.load", "inputs": {"path": path}}}}
        response = client.put("/api/graphs/climb", json=document)
        assert response.status_code == 422, path
        assert response.json()["issues"][0]["code"] == "forbidden_path"


def test_models_come_from_the_model_registry(client: TestClient) -> None:
    listing = client.get("/api/models").json()
    assert listing["registry"] is True
    by_name = {entry["name"]: entry for entry in listing["models"]}
    assert by_name["tiny/llm"]["kind"] == "llm" and by_name["tiny/llm"]["source"] == "tiny"
    assert by_name["sd-turbo"]["source"].endswith("of stabilityai/sd-turbo")
