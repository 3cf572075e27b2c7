"""The shipped image graph runs offline with real upscaling weights and writes PNGs that carry the graph."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import load_document
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session

ROOT = Path(__file__).resolve().parents[2]


def test_upscale_sample_graph_runs_and_writes_pngs(tmp_path: Path, shared_models_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image as PILImage

    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    session = Session(GraphEnv(Registry.discover(), GraphLibrary([ROOT / "graphs"])), None, data_dir=tmp_path)
    result = session.run(load_document(ROOT / "graphs" / "upscale-sample.json"), out_dir=tmp_path / "out")
    assert result.record.status == "succeeded", result.record.error
    with PILImage.open(ROOT / "graphs" / "assets" / "sample.png") as sample:
        width, height = sample.size
    assert tuple(result.values["upscaled"].tensor.shape) == (1, 3, 4 * height, 4 * width)
    with PILImage.open(result.record.outputs["comparison"]["path"]) as sheet:
        assert sheet.width == 3 * 4 * width + 4 * 4
        assert "nodeforge.graph" in sheet.text


@pytest.fixture(scope="module")
def graph_session(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Session]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
        yield Session(GraphEnv(Registry.discover(), GraphLibrary([ROOT / "graphs"])), None,
                      data_dir=tmp_path_factory.mktemp("data"))


def sample_tensor(name: str = "sample.png") -> Any:
    from nodeforge.engine.media_io import load_media

    return load_media("image", ROOT / "graphs" / "assets" / name).tensor


@pytest.mark.parametrize("name", ["controlnet-canny", "controlnet-depth", "ip-adapter"])
def test_control_graphs_run_offline_at_the_sample_size(graph_session: Session, name: str) -> None:
    result = graph_session.run(load_document(ROOT / "graphs" / f"{name}.json"))
    assert result.record.status == "succeeded", result.record.error
    assert tuple(result.values["image"].tensor.shape) == tuple(sample_tensor().shape)
    control = {"controlnet-canny": "edges", "controlnet-depth": "depth"}.get(name)
    if control:
        assert tuple(result.values[control].tensor.shape) == tuple(sample_tensor().shape)


def test_inpaint_graph_repaints_only_the_sun(graph_session: Session) -> None:
    result = graph_session.run(load_document(ROOT / "graphs" / "inpaint.json"))
    assert result.record.status == "succeeded", result.record.error
    image, mask, sample = result.values["image"].tensor, result.values["mask"].tensor, sample_tensor()
    keep = (mask == 0).expand_as(sample)
    assert bool((image[keep] == sample[keep]).all())
    assert float((image - sample).abs()[(mask > 0.5).expand_as(sample)].mean()) > 0.05


def test_outpaint_graph_widens_the_picture_and_keeps_it(graph_session: Session) -> None:
    result = graph_session.run(load_document(ROOT / "graphs" / "outpaint.json"), {"extend": 16})
    assert result.record.status == "succeeded", result.record.error
    image, sample = result.values["image"].tensor, sample_tensor()
    assert tuple(image.shape) == (1, 3, sample.shape[2], sample.shape[3] + 32)
    width = int(sample.shape[3])
    inner, inner_mask = image[..., 16:16 + width], result.values["mask"].tensor[..., 16:16 + width]
    keep = (inner_mask == 0).expand_as(sample)
    assert bool(keep.any()) and bool((inner[keep] == sample[keep]).all())
    assert bool((result.values["mask"].tensor[..., :16] == 1).all())
