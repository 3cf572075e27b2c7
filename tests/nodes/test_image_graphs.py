"""The shipped image graph runs offline with real upscaling weights and writes PNGs that carry the graph."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge.engine.document import load_document
from nodeforge.engine.graph import GraphEnv
from nodeforge.engine.library import GraphLibrary
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session

ROOT = Path(__file__).resolve().parents[2]


def test_upscale_sample_graph_runs_and_writes_pngs(tmp_path: Path, shared_models_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image as PILImage

    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    executor = Session(GraphEnv(Registry.discover(), GraphLibrary([ROOT / "graphs"])), None, data_dir=tmp_path)
    result = executor.run(load_document(ROOT / "graphs" / "upscale-sample.json"), out_dir=tmp_path / "out")
    assert result.record.status == "succeeded", result.record.error
    with PILImage.open(ROOT / "graphs" / "assets" / "sample.png") as sample:
        width, height = sample.size
    assert tuple(result.values["upscaled"].tensor.shape) == (1, 3, 4 * height, 4 * width)
    with PILImage.open(result.record.outputs["comparison"]["path"]) as sheet:
        assert sheet.width == 3 * 4 * width + 4 * 4
        assert "nodeforge.graph" in sheet.text
