"""API contracts on the wire, through a real uvicorn server: ``nosniff`` on every response (the guard's refusals
included), error bodies that never show the server's own folders, an unexpected exception answered in the
route's error shape, and OPTIONS and 405 naming every method of a path."""

from __future__ import annotations

import dataclasses
import logging
import re
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


def test_an_unexpected_exception_answers_json_in_the_routes_shape_and_is_logged(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A bug below the routes answers 500 as every other error does: JSON (OpenAI's shape under /v1), nosniff,
    and nothing of the exception's text; the traceback goes to the server's log under the reference given."""
    app = create_app(settings)
    secret = f"{settings.data_dir.resolve()}/private"

    def boom() -> None:
        raise RuntimeError(f"cannot open {secret}")

    app.add_api_route("/api/boom", boom)
    app.add_api_route("/v1/boom", boom)
    with LiveServer(app) as live, httpx2.Client(base_url=live.url, timeout=30) as http, \
            caplog.at_level(logging.ERROR, logger="nodeforge.server"):
        plain, openai = http.get("/api/boom"), http.get("/v1/boom")
    for response in (plain, openai):
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert secret not in response.text and "RuntimeError" not in response.text
    assert set(plain.json()) == {"detail"}
    error = openai.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    references = [re.search(r"reference (\w+)", text).group(1)  # type: ignore[union-attr]
                  for text in (plain.json()["detail"], error["message"])]
    logged = [record for record in caplog.records if record.name == "nodeforge.server"]
    assert len(logged) == 2 and all(reference in record.getMessage()
                                    for reference, record in zip(references, logged, strict=True))
    assert all(record.exc_info and secret in str(record.exc_info[1]) for record in logged)
    assert references[0] != references[1]


def test_options_and_405_name_every_method_the_path_takes(http: httpx2.Client) -> None:
    """A path's routes each take one method; OPTIONS and a 405 name them all (RFC 9110: a 405 carries Allow)."""
    for path, methods in {"/api/graphs/hello": "GET, PUT, DELETE, OPTIONS", "/api/runs": "GET, POST, OPTIONS",
                          "/v1/chat/completions": "POST, OPTIONS", "/static/app.js": "GET, HEAD, OPTIONS"}.items():
        options = http.options(path)
        assert (options.status_code, options.headers["allow"], options.content) == (204, methods, b""), path
        assert options.headers["x-content-type-options"] == "nosniff"
        refused = http.request("PATCH", path)
        assert (refused.status_code, refused.headers["allow"]) == (405, methods), path
    assert http.patch("/v1/chat/completions").json()["error"]["code"] == "method_not_allowed"
    nowhere = http.options("/api/nowhere")
    assert nowhere.status_code == 404 and nowhere.json() == {"detail": "Not Found"}
