"""API contracts on the wire, through a real uvicorn server: ``nosniff`` on every response (the guard's refusals
included) and error bodies that never show the server's own folders."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from nodeforge.server.app import create_app
from nodeforge.server.settings import PROJECT_GRAPHS, Settings
from tests.server.support import LiveServer

TOKEN = "contract-token"


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx2.Client]:
    with LiveServer(create_app(settings)) as live, httpx2.Client(base_url=live.url, timeout=30) as client:
        yield client


def test_every_response_is_nosniff_the_guards_refusals_too(settings: Settings) -> None:
    secured = dataclasses.replace(settings, token=TOKEN, max_body_bytes=1000)
    with LiveServer(create_app(secured)) as live, httpx2.Client(base_url=live.url, timeout=30) as http:
        good = {"Authorization": f"Bearer {TOKEN}"}
        answers = {
            200: http.get("/api/health", headers=good),
            401: http.get("/api/health"),
            403: http.get("/api/health", headers={**good, "Host": "attacker.example"}),
            413: http.post("/api/runs", headers=good, content=b"x" * 2000),
            404: http.get("/api/runs/missing", headers=good),
        }
        for status, response in answers.items():
            assert response.status_code == status
            assert response.headers["x-content-type-options"] == "nosniff", status
        for path in ("/v1/models", "/openapi.json"):
            refused = http.get(path, headers={"Origin": "http://evil.example"})
            assert refused.status_code == 403 and refused.headers["x-content-type-options"] == "nosniff"


def corrupt_mp4() -> bytes:
    return b"\x00\x00\x00\x18ftypmp42" + b"not a movie" * 20


def test_error_bodies_do_not_show_server_paths(http: httpx2.Client, settings: Settings) -> None:
    hidden = (str(settings.data_dir.resolve()), str(PROJECT_GRAPHS), ".upload")
    upload = http.post("/api/uploads", files={"file": ("clip.mp4", corrupt_mp4(), "video/mp4")})
    missing = http.post("/api/runs", json={"graph": {"nodes": {"c": {"type": "graph.call",
                                                                     "inputs": {"graph": "nowhere"}}}}})
    assert upload.status_code == 415 and "video/mp4" in upload.json()["detail"]
    assert missing.status_code == 422 and "'nowhere'" in missing.json()["issues"][0]["message"]
    for response in (upload, missing):
        assert not [part for part in hidden if part in response.text], response.text


def test_a_graph_that_cannot_be_read_is_named_not_located(http: httpx2.Client, settings: Settings) -> None:
    broken = settings.data_dir / "graphs" / "broken.json"
    broken.write_text('{"nodes": {"a": {"type": "graph.call", "inputs": {"graph": "hello"}}}')
    caller = {"nodes": {"c": {"type": "graph.call", "inputs": {"graph": "broken"}}}}
    response = http.post("/api/runs", json={"graph": caller})
    assert response.status_code == 422 and "broken" in response.text
    assert str(Path(settings.data_dir).resolve()) not in response.text
