"""The comparison graphs run offline: a sweep of image models with CLIP scores on a sheet, LLMs with usage, and
the speech round trip with its word error rate; shared work in a sweep runs once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import load_document
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session
from nodeforge.engine.sweep import expand_sweep, sweep_cells

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Session]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
        yield Session(GraphEnv(Registry.discover(), GraphLibrary([ROOT / "graphs"])), None, workers=2,
                      data_dir=tmp_path_factory.mktemp("data"))


def test_compare_image_models_gives_six_scored_cells_on_one_sheet(session: Session) -> None:
    result = session.run(load_document(ROOT / "graphs" / "compare-image-models.json"))
    assert result.record.status == "succeeded", result.record.error
    cells = result.values["cells"]
    assert [(cell["inputs"]["model"], cell["inputs"]["seed"]) for cell in cells] == [
        (model, seed) for model in ("tiny/sd", "tiny/sdxl", "tiny/flux") for seed in (1, 2)]
    assert all(isinstance(cell["outputs"]["clip_score"], float) for cell in cells)
    assert result.values["clip_scores"] == [cell["outputs"]["clip_score"] for cell in cells]
    sheet = result.values["sheet"]
    assert sheet.width > 2 * 64 and sheet.height > 3 * 64


def test_a_prompt_expansion_feeding_three_image_models_runs_once(session: Session, tmp_path: Path) -> None:
    graph = {"name": "expand-then-draw",
             "inputs": {"idea": {"type": "text", "default": "a fox"}, "model": {"type": "text", "default": "tiny/sd"}},
             "nodes": {
                 "expand": {"type": "llm.generate", "inputs": {"prompt": {"input": "idea"}, "model": "tiny/llm",
                                                               "max_new_tokens": 8, "seed": 1}},
                 "draw": {"type": "image.generate", "inputs": {"prompt": {"from": "expand.text"},
                                                               "model": {"input": "model"}, "width": 32,
                                                               "height": 32, "steps": 1}}},
             "outputs": {"image": {"from": "draw.image"}}}
    (tmp_path / "expand.json").write_text(json.dumps(graph), encoding="utf-8")
    document = load_document(tmp_path / "expand.json")
    sweep = expand_sweep(document, sweep_cells({"model": ["tiny/sd", "tiny/sdxl", "tiny/flux"]}))
    events: list[str] = []
    result = session.run(sweep.document, sweep.inputs,
                         listener=lambda event: events.append(event.data.node or "") if event.kind == "node.started"
                         else None)
    assert result.record.status == "succeeded", result.record.error
    assert events.count("expand") == 1
    assert sorted(node for node in events if node.endswith("draw")) == ["c0__draw", "c1__draw", "c2__draw"]


def test_compare_llms_reports_usage_per_cell(session: Session) -> None:
    result = session.run(load_document(ROOT / "graphs" / "compare-llms.json"))
    assert result.record.status == "succeeded", result.record.error
    usage = result.values["usage"]
    assert [cell["inputs"]["max_new_tokens"] for cell in result.values["cells"]] == [16, 32]
    assert all(item["completion_tokens"] <= limit for item, limit in zip(usage, (16, 32), strict=True))
    assert all(item["prompt_tokens"] > 0 and item["tokens_per_second"] > 0 for item in usage)


def test_voice_roundtrip_comes_back_nearly_word_for_word(session: Session) -> None:
    result = session.run(load_document(ROOT / "graphs" / "voice-roundtrip.json"))
    assert result.record.status == "succeeded", result.record.error
    assert "fox" in result.values["transcript"].lower()
    assert result.values["wer"] <= 0.2  # whisper-tiny.en may mishear an article in Piper's unseeded speech
