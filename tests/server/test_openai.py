"""The OpenAI-compatible endpoint on tiny/llm, and llm.generate's ``openai:<model>`` calling it over loopback."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from starlette.testclient import TestClient

from nodeforge.engine.document import parse_document
from nodeforge.engine.events import NodeProgress
from nodeforge.engine.session import Session
from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer

pytest.importorskip("transformers")
CHAT = {"model": "tiny/llm", "messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": "hello there"}],
        "max_tokens": 12, "temperature": 0.8, "top_p": 0.9, "seed": 7}


@pytest.fixture
def models_dir(shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    return shared_models_dir


@pytest.fixture
def llm_client(settings: Settings, models_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


def stream_text(body: str) -> tuple[str, list[dict]]:
    chunks = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    assert body.rstrip().endswith("data: [DONE]")
    text = "".join((choice["delta"].get("content") or "") for chunk in chunks for choice in chunk["choices"])
    return text, chunks


def test_models_and_a_seeded_completion(llm_client: TestClient) -> None:
    models = llm_client.get("/v1/models").json()
    assert models["object"] == "list" and "tiny/llm" in [card["id"] for card in models["data"]]
    assert {card["owned_by"] for card in models["data"]} == {"nodeforge"}
    first = llm_client.post("/v1/chat/completions", json=CHAT)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["object"] == "chat.completion" and body["model"] == "tiny/llm"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] <= 12 and body["usage"]["prompt_tokens"] > 0
    again = llm_client.post("/v1/chat/completions", json=CHAT).json()
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]
    streamed = llm_client.post("/v1/chat/completions", json={**CHAT, "stream": True,
                                                             "stream_options": {"include_usage": True}})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    text, chunks = stream_text(streamed.text)
    assert text == choice["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["usage"] == body["usage"] and chunks[-1]["choices"] == []
    assert chunks[-2]["choices"][0]["finish_reason"] == choice["finish_reason"]


def test_models_that_cannot_answer(llm_client: TestClient, tmp_path: Path) -> None:
    for model in ("tiny/nothing", "tiny/sd", "openai:gpt-4o", str(tmp_path / "weights")):
        response = llm_client.post("/v1/chat/completions", json={**CHAT, "model": model})
        assert response.status_code == 404, model
        assert response.json()["error"]["code"] == "model_not_found"
    streamed = llm_client.post("/v1/chat/completions", json={**CHAT, "model": "tiny/nothing", "stream": True})
    assert streamed.status_code == 404
    assert llm_client.post("/v1/chat/completions", json={**CHAT, "n": 2}).status_code == 422
    assert llm_client.post("/v1/chat/completions", json={**CHAT, "messages": []}).status_code == 422
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert llm_client.post("/v1/chat/completions", json={**CHAT, "messages": image}).status_code == 400


def test_llm_generate_calls_this_server_over_loopback(settings: Settings, models_dir: Path, session: Session,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    graph = {"nodes": {"local": {"type": "llm.generate", "inputs": {
                 "prompt": "hello there", "system": "be brief", "model": "tiny/llm", "max_new_tokens": 12,
                 "temperature": 0.8, "top_p": 0.9, "seed": 7}},
             "remote": {"type": "llm.generate", "inputs": {
                 "prompt": "hello there", "system": "be brief", "model": "openai:tiny/llm", "max_new_tokens": 12,
                 "temperature": 0.8, "top_p": 0.9, "seed": 7}}}}
    secured = dataclasses.replace(settings, token="loop-token")
    with LiveServer(create_app(secured)) as live:
        monkeypatch.setenv("NODEFORGE_OPENAI_BASE_URL", f"{live.url}/v1")
        monkeypatch.setenv("NODEFORGE_OPENAI_API_KEY", "loop-token")
        events: list = []
        result = session.run(parse_document(graph), listener=events.append)
        assert result.record.status == "succeeded", result.record.error
        assert result.values["remote.text"] == result.values["local.text"] != ""
        counts = ("prompt_tokens", "completion_tokens", "total_tokens", "finish_reason")
        remote, local = result.values["remote.usage"], result.values["local.usage"]
        assert [remote[key] for key in counts] == [local[key] for key in counts], "the server's usage chunk"
        assert any(isinstance(e.data, NodeProgress) and e.data.node == "remote" for e in events)
        monkeypatch.setenv("NODEFORGE_OPENAI_API_KEY", "wrong")
        uncached = {"type": "llm.generate", "inputs": {**graph["nodes"]["remote"]["inputs"], "seed": 8}}
        refused = session.run(parse_document({"nodes": {"remote": uncached}}))
        assert refused.record.status == "failed" and "401" in refused.record.error
        assert httpx2.get(f"{live.url}/v1/models").status_code == 401
