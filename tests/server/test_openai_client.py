"""The OpenAI-compatible surface driven by the official ``openai`` client through a real uvicorn server: only models
that can answer now are listed (offline), one model can be retrieved, and errors reach the client as its typed
exceptions carrying our message and code."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer

openai = pytest.importorskip("openai")
pytest.importorskip("transformers")
TOKEN = "client-token"
USER = [{"role": "user", "content": "hello there"}]
SHIPPED_ALIASES = ("qwen2.5-0.5b-instruct", "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct", "smollm2-360m-instruct")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local Hugging Face cache holding one snapshot, ``acme/chat-llm`` (nothing is downloaded)."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    commit = "0" * 40
    repo = root / "models--acme--chat-llm"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return root


@pytest.fixture
def client(settings: Settings, shared_models_dir: Path, hub_cache: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[openai.OpenAI]:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "models.toml").write_text(
        '[aliases]\ncached-llm = { model = "acme/chat-llm", family = "llm" }\n'
        'remote-llm = { model = "acme/not-downloaded", family = "llm" }\n')
    with LiveServer(create_app(dataclasses.replace(settings, token=TOKEN))) as live:
        yield openai.OpenAI(base_url=f"{live.url}/v1", api_key=TOKEN, max_retries=0, timeout=60)


def test_only_models_that_can_answer_now_are_listed(client: openai.OpenAI) -> None:
    listed = [model.id for model in client.models.list()]
    # the LLMs first (the shipped GGUF model is installed), then the image, voice and recognizer models that the
    # media endpoints serve (tests/server/test_openai_media.py), tiny/sd among them
    assert listed[:3] == ["tiny/llm", "cached-llm", "smollm2-135m-instruct"] and "tiny/sd" in listed[3:]
    assert client.models.retrieve("tiny/llm").id == "tiny/llm"
    assert client.models.retrieve("cached-llm").owned_by == "nodeforge"
    for name in (*SHIPPED_ALIASES, "remote-llm", "acme/not-downloaded", "tiny/nothing"):
        with pytest.raises(openai.NotFoundError) as missing:
            client.models.retrieve(name)
        assert missing.value.code == "model_not_found" and f"'{name}'" in str(missing.value)


def test_a_model_that_cannot_answer_is_refused_before_any_stream(client: openai.OpenAI) -> None:
    for name in ("qwen2.5-0.5b-instruct", "remote-llm"):
        for stream in (False, True):
            with pytest.raises(openai.NotFoundError) as refused:
                client.chat.completions.create(model=name, messages=USER, max_tokens=4, stream=stream)
            assert refused.value.code == "model_not_found"
            assert "not in the local Hugging Face cache" in str(refused.value)


def test_completions_plain_and_streamed(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="tiny/llm", messages=USER, max_tokens=6, seed=3)
    assert plain.object == "chat.completion" and plain.choices[0].message.content
    chunks = list(client.chat.completions.create(model="tiny/llm", messages=USER, max_tokens=6, seed=3,
                                                 stream=True))
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert streamed == plain.choices[0].message.content


def test_errors_reach_the_client_with_their_message(client: openai.OpenAI) -> None:
    stranger = client.with_options(api_key="wrong")
    with pytest.raises(openai.AuthenticationError) as denied:
        stranger.models.list()
    assert denied.value.code == "invalid_api_key" and "bearer token" in str(denied.value)
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model="tiny/llm", messages=[])
    assert invalid.value.param == "messages" and "at least 1 item" in str(invalid.value)
    with pytest.raises(openai.BadRequestError) as image:
        client.chat.completions.create(model="tiny/llm", messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}])
    assert "only text content parts" in str(image.value)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="tiny/nothing", messages=USER)
    assert "unknown tiny model 'tiny/nothing'" in str(unknown.value)
