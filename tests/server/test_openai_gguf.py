"""The OpenAI-compatible endpoint serves the shipped GGUF model (SmolLM2-135M-Instruct, converted once into the
shared models dir) to the official ``openai`` client through a real uvicorn server, offline."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer
from tests.support.english import assert_english_answer

openai = pytest.importorskip("openai")
pytest.importorskip("gguf")
MODEL = "smollm2-135m-instruct"


@pytest.fixture
def client(settings: Settings, shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[openai.OpenAI]:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    with LiveServer(create_app(dataclasses.replace(settings, token="gguf-token"))) as live:
        yield openai.OpenAI(base_url=f"{live.url}/v1", api_key="gguf-token", max_retries=0, timeout=600)


def test_the_shipped_gguf_model_answers_through_the_openai_client(client: openai.OpenAI) -> None:
    assert MODEL in [model.id for model in client.models.list()]
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=20,
        temperature=0)
    assert answer.model == MODEL and answer.choices[0].finish_reason in ("stop", "length")
    assert_english_answer(answer.choices[0].message.content or "", "Paris")
    usage = answer.usage
    assert usage is not None and usage.prompt_tokens > 5 and 1 <= usage.completion_tokens <= 20
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
