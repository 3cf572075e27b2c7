"""The server's path policy through a real HTTP server: every file a node opens is checked where it is used,
whether the path was written in the graph, given as a graph input or computed by an upstream node; folders a
graph may read are not folders it may write; outside the allowed folders existing and missing files get one
answer, naming the node and the input and never a resolved absolute path."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, parse_sse, wait_finished
from tests.server.test_artifacts_api import png_bytes

OUTSIDE_READ = "is not a file inside the folders this server allows"
OUTSIDE_WRITE = "is not a folder this server may write to"
OUTSIDE_MODEL = "is not a model file or folder inside the folders this server allows"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder the server does not allow, holding a real picture."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "secret.png").write_bytes(png_bytes())
    return folder


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx2.Client]:
    with LiveServer(create_app(settings)) as live, httpx2.Client(base_url=live.url, timeout=60) as client:
        yield client


def run(client: httpx2.Client, graph: dict[str, Any], inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    response = client.post("/api/runs", json={"graph": graph, "inputs": inputs or {}})
    assert response.status_code == 202, response.text
    return wait_finished(client, response.json()["id"])


def load_from_input(where: str) -> dict[str, Any]:
    return {"inputs": {"where": {"type": "text", "default": where}},
            "nodes": {"load": {"type": "image.load", "inputs": {"path": {"input": "where"}}}},
            "outputs": {"image": {"from": "load.image"}}}


def load_from_link(where: str) -> dict[str, Any]:
    return {"nodes": {"name": {"type": "text.template", "inputs": {"template": "{x}", "x": where}},
                      "load": {"type": "image.load", "inputs": {"path": {"from": "name.text"}}}},
            "outputs": {"image": {"from": "load.image"}}}


def test_image_load_from_an_input_or_a_link_cannot_read_outside(http: httpx2.Client, outside: Path,
                                                                 settings: Settings) -> None:
    errors = {}
    for make in (load_from_input, load_from_link):
        for name in ("secret.png", "missing.png"):
            record = run(http, make(str(outside / name)))
            assert record["status"] == "failed" and record["outputs"] == {}
            errors[make.__name__, name] = record["nodes"]["load"]["error"].replace(name, "NAME")
    assert len(set(errors.values())) == 1, errors
    error = next(iter(errors.values()))
    assert error.startswith("node 'load' (image.load), input 'path': ") and OUTSIDE_READ in error
    assert str(settings.data_dir) not in error


def test_a_symlink_inside_an_allowed_folder_does_not_lead_out(http: httpx2.Client, outside: Path,
                                                              settings: Settings) -> None:
    inputs = settings.data_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "link.png").symlink_to(outside / "secret.png")
    (inputs / "mine.png").write_bytes(png_bytes(5, 3))
    refused = run(http, load_from_input(str(inputs / "link.png")))
    assert OUTSIDE_READ in refused["nodes"]["load"]["error"]
    allowed = run(http, load_from_input(str(inputs / "mine.png")))
    assert allowed["status"] == "succeeded" and allowed["outputs"]["image"]["media_type"] == "image/png"


def test_relative_paths_are_looked_up_in_the_allowed_folders_only(http: httpx2.Client, settings: Settings,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 outside: Path) -> None:
    monkeypatch.chdir(outside)
    (settings.data_dir / "inputs" / "mine.png").write_bytes(png_bytes(5, 3))
    assert run(http, load_from_link("mine.png"))["status"] == "succeeded"
    missing = run(http, load_from_link("secret.png"))["nodes"]["load"]["error"]  # in the working folder only
    assert "no file or uploaded artifact 'secret.png' (a plain name is looked for in the data dir's inputs" in missing
    for climbing in ("../private/secret.png", "../../../../../../../etc/hostname"):
        record = run(http, load_from_link(climbing))
        assert OUTSIDE_READ in record["nodes"]["load"]["error"], climbing


def saving(folder: str) -> dict[str, Any]:
    """A graph that saves the example picture into ``folder``, given as a graph input."""
    return {"inputs": {"folder": {"type": "text", "default": folder}},
            "nodes": {"load": {"type": "image.load", "inputs": {"path": "assets/sample.png"}},
                      "save": {"type": "image.save", "inputs": {"image": {"from": "load.image"},
                                                                "folder": {"input": "folder"}}}},
            "outputs": {"path": {"from": "save.path"}}}


def test_image_save_writes_only_into_writable_folders(http: httpx2.Client, settings: Settings,
                                                      tmp_path: Path) -> None:
    target = tmp_path / "anywhere" / "new"
    refused = run(http, saving(str(target)))
    assert refused["status"] == "failed" and OUTSIDE_WRITE in refused["nodes"]["save"]["error"]
    assert not target.exists() and not target.parent.exists()
    assert settings.examples_dir is not None
    before = sorted(settings.examples_dir.rglob("*"))
    examples = run(http, saving(str(settings.examples_dir)))
    assert OUTSIDE_WRITE in examples["nodes"]["save"]["error"] and sorted(settings.examples_dir.rglob("*")) == before
    inside = run(http, saving("portraits"))
    assert inside["status"] == "succeeded"
    written = Path(inside["outputs"]["path"])
    assert written.parent == settings.data_dir / "outputs" / "portraits" and written.is_file()


def test_a_read_folder_becomes_writable_only_when_given_for_writing(settings: Settings, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    readable = dataclasses.replace(settings, input_dirs=(shared,))
    with LiveServer(create_app(readable)) as live, httpx2.Client(base_url=live.url, timeout=60) as client:
        record = run(client, saving(str(shared)))
        assert OUTSIDE_WRITE in record["nodes"]["save"]["error"] and list(shared.iterdir()) == []
    writable = dataclasses.replace(settings, input_dirs=(shared,), write_dirs=(shared,))
    with LiveServer(create_app(writable)) as live, httpx2.Client(base_url=live.url, timeout=60) as client:
        record = run(client, saving(str(shared)))
        assert record["status"] == "succeeded" and Path(record["outputs"]["path"]).parent == shared


def test_a_linked_model_cannot_name_a_folder_outside(http: httpx2.Client, outside: Path) -> None:
    errors = set()
    for model in (str(outside), str(outside / "missing"), "../../../../../../../etc", "~/.cache"):
        graph = {"nodes": {"name": {"type": "text.template", "inputs": {"template": "{x}", "x": model}},
                           "chat": {"type": "llm.generate", "inputs": {
                               "prompt": "hi", "max_new_tokens": 4, "model": {"from": "name.text"}}}},
                 "outputs": {"text": {"from": "chat.text"}}}
        record = run(http, graph)
        error = record["nodes"]["chat"]["error"]
        assert error.startswith("node 'chat' (llm.generate), input 'model': ") and OUTSIDE_MODEL in error, error
        errors.add(error.replace(model, "MODEL"))
        assert not any(event["kind"] == "model.loaded" for event in events(http, record["id"]))
    assert len(errors) == 1


def events(client: httpx2.Client, run_id: str) -> list[dict[str, Any]]:
    return [event["data"] for event in parse_sse(client.get(f"/api/runs/{run_id}/events").text)]


def test_literal_paths_are_refused_at_submission_from_the_declarations(http: httpx2.Client, outside: Path) -> None:
    graph = {"nodes": {"load": {"type": "image.load", "inputs": {"path": str(outside / "secret.png")}},
                       "note": {"type": "text.template", "inputs": {"template": "{path}",
                                                                    "path": str(outside / "secret.png")}}},
             "outputs": {"image": {"from": "load.image"}}}
    response = http.post("/api/runs", json={"graph": graph})
    assert response.status_code == 422
    issues = response.json()["issues"]
    assert [(issue["node"], issue["input"], issue["code"]) for issue in issues] == [
        ("load", "path", "forbidden_path")]
    assert http.post("/api/runs", json={"graph": {**graph, "nodes": {"note": graph["nodes"]["note"]},
                                                  "outputs": {"text": {"from": "note.text"}}}}).status_code == 202


def test_the_catalogue_shows_which_inputs_are_files(http: httpx2.Client) -> None:
    nodes = {entry["type"]: entry for entry in http.get("/api/nodes").json()["nodes"]}
    assert nodes["image.load"]["files"] == {"path": "read"}
    assert nodes["image.save"]["files"] == {"folder": "write"}
    assert nodes["image.generate"]["files"] == {"model": "model", "loras": "model", "controls": "model",
                                                 "vae": "model"}
    assert nodes["text.template"]["files"] == {}
