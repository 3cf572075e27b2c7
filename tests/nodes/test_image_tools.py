"""image.load, image.save, image.grid, image.resize and image.caption."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.events import Event
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session
from nodeforge.engine.values import Image
from tests.nodes.image_support import draw_picture, image_executor, pixels, run_nodes, succeeded

__all__ = ["image_executor"]


@pytest.fixture(scope="module")
def solid(tmp_path_factory: pytest.TempPathFactory) -> Callable[[tuple[int, int, int], int, int], dict]:
    """An image.load node of a solid-colour PNG: a cheap source for grid, resize and save tests."""
    from PIL import Image as PILImage

    folder = tmp_path_factory.mktemp("solid")

    def node(colour: tuple[int, int, int], width: int, height: int) -> dict:
        path = folder / f"{'-'.join(map(str, colour))}-{width}x{height}.png"
        if not path.exists():
            PILImage.new("RGB", (width, height), colour).save(path)
        return {"type": "image.load", "inputs": {"path": str(path)}}

    return node


def test_load_keys_on_file_content_and_finds_graph_assets(tmp_path: Path) -> None:
    library = tmp_path / "graphs"
    (library / "assets").mkdir(parents=True)
    picture = library / "assets" / "pic.png"
    draw_picture(32).save(picture)
    cache = ResultCache(tmp_path / "cache")
    session = Session(GraphEnv(Registry.discover(), GraphLibrary([library])), cache, data_dir=tmp_path)
    nodes = {"img": {"type": "image.load", "inputs": {"path": "assets/pic.png"}},
             "big": {"type": "image.resize", "inputs": {"image": {"from": "img.image"}, "scale": 2.0}}}
    try:
        first = succeeded(run_nodes(session, nodes))
        assert tuple(first["big.image"].tensor.shape) == (1, 3, 64, 64)
        assert run_nodes(session, nodes).record.nodes["img"].status == "cached"
        draw_picture(48).save(picture)
        events: list[Event] = []
        changed = succeeded(run_nodes(session, nodes, events=events))
        assert tuple(changed["big.image"].tensor.shape) == (1, 3, 96, 96)
        assert {e.data.node for e in events if e.kind == "node.finished"} == {"img", "big"}
    finally:
        cache.close()


def test_load_reports_missing_and_undecodable_files(image_executor: Session, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    result = run_nodes(image_executor, {"img": {"type": "image.load", "inputs": {"path": str(broken)}}})
    assert result.record.nodes["img"].error.startswith(
        "node 'img' (image.load), input 'path': cannot decode broken.png as an image (")
    assert result.record.nodes["img"].error.endswith("accepted: PNG, JPEG, WebP, GIF, BMP, TIFF")
    result = run_nodes(image_executor, {"img": {"type": "image.load", "inputs": {"path": "nowhere.png"}}})
    assert result.record.nodes["img"].error == (
        "node 'img' (image.load), input 'path': no file or uploaded artifact 'nowhere.png' (a plain name is looked "
        "for in the data dir's inputs folder, the graph's own folder and the readable folders)")


def test_a_plain_name_is_found_in_the_data_dirs_inputs(image_executor: Session) -> None:
    from PIL import Image as PILImage

    inputs = image_executor.data_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (6, 4), "red").save(inputs / "plain.png")
    result = run_nodes(image_executor, {"img": {"type": "image.load", "inputs": {"path": "plain.png"}}})
    assert result.record.status == "succeeded", result.record.error
    assert tuple(result.values["img.image"].tensor.shape) == (1, 3, 4, 6)


def test_load_keeps_alpha_and_applies_exif_orientation(image_executor: Session, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    PILImage.new("RGBA", (6, 4), (10, 20, 30, 128)).save(tmp_path / "a.png")
    rotated = PILImage.new("RGB", (6, 4), (200, 0, 0))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    rotated.save(tmp_path / "r.jpg", exif=exif)
    values = succeeded(run_nodes(image_executor, {
        "a": {"type": "image.load", "inputs": {"path": str(tmp_path / "a.png")}},
        "r": {"type": "image.load", "inputs": {"path": str(tmp_path / "r.jpg")}}}))
    assert tuple(values["a.image"].tensor.shape) == (1, 4, 4, 6)
    assert tuple(values["r.image"].tensor.shape) == (1, 3, 6, 4)


def test_save_always_runs_numbers_files_and_embeds_the_run(tmp_path: Path, solid: Callable) -> None:
    from PIL import Image as PILImage

    cache = ResultCache(tmp_path / "cache")
    session = Session(GraphEnv(Registry.discover(), GraphLibrary([])), cache, data_dir=tmp_path)
    nodes = {"img": solid((0, 128, 255), 8, 8),
             "save": {"type": "image.save", "inputs": {"image": {"from": "img.image"}, "name": "blue",
                                                       "folder": str(tmp_path / "out")}}}
    try:
        first = succeeded(run_nodes(session, nodes))
        second = run_nodes(session, nodes)
        assert second.record.nodes["img"].status == "cached" and second.record.nodes["save"].status == "succeeded"
    finally:
        cache.close()
    assert Path(first["save.path"]).name == "blue_00001.png"
    assert Path(second.values["save.path"]).name == "blue_00002.png"
    with PILImage.open(second.values["save.path"]) as saved:
        assert json.loads(saved.text["nodeforge.run"]) == {"id": second.record.id, "node": "save"}
        assert saved.getpixel((0, 0)) == (0, 128, 255)
    with pytest.raises(GraphValidationError, match="is not a plain file name prefix"):
        run_nodes(session, {"img": nodes["img"], "save": {"type": "image.save", "inputs": {
            "image": {"from": "img.image"}, "name": "../escape"}}})


def test_grid_lays_out_cells_with_labels(image_executor: Session, solid: Callable) -> None:
    values = succeeded(run_nodes(image_executor, {
        "r": solid((255, 0, 0), 20, 10), "g": solid((0, 255, 0), 20, 10), "b": solid((0, 0, 255), 10, 10),
        "grid": {"type": "image.grid", "inputs": {
            "images": [{"from": "r.image"}, {"from": "g.image"}, {"from": "b.image"}], "columns": 2, "gap": 2,
            "labels": ["red", "green"], "background": "black"}}}))
    sheet = pixels(values["grid.image"])[0]
    strip = 10 + 6
    assert tuple(sheet.shape) == (3, 2 * (10 + strip) + 3 * 2, 2 * 20 + 3 * 2)
    assert sheet[:, 2, 2].tolist() == [255, 0, 0]
    assert sheet[:, 2, 24].tolist() == [0, 255, 0]
    assert sheet[:, 2 + 10 + strip + 2, 2 + 5 + 2].tolist() == [0, 0, 255]
    assert sheet[:, 2 + 10 + strip + 2, 2].tolist() == [0, 0, 0]
    label = sheet[:, 12:12 + strip, 2:22]
    assert int(label.max()) > 128 and int(label.min()) == 0
    result = run_nodes(image_executor, {"r": solid((255, 0, 0), 4, 4), "grid": {"type": "image.grid", "inputs": {
        "images": [{"from": "r.image"}], "labels": ["one", "two"]}}})
    assert result.record.nodes["grid"].error == ("node 'grid' (image.grid), input 'labels': 2 labels for 1 images; "
                                                 "give at most one per image")


@pytest.mark.parametrize(("inputs", "size"), [
    ({"scale": 0.5}, (10, 20)),
    ({"width": 10}, (5, 10)),
    ({"height": 30}, (30, 60)),
    ({"width": 30, "height": 30, "mode": "fit"}, (15, 30)),
    ({"width": 30, "height": 30, "mode": "fill"}, (30, 30)),
    ({"width": 30, "height": 30, "mode": "stretch"}, (30, 30)),
    ({"width": 50, "multiple": 8}, (24, 48)),
])
def test_resize_modes(image_executor: Session, solid: Callable, inputs: dict, size: tuple[int, int]) -> None:
    values = succeeded(run_nodes(image_executor, {"img": solid((9, 9, 9), 40, 20), "rs": {
        "type": "image.resize", "inputs": {"image": {"from": "img.image"}, **inputs}}}))
    assert tuple(values["rs.image"].tensor.shape[2:]) == size


def test_resize_needs_a_size(image_executor: Session, solid: Callable) -> None:
    with pytest.raises(GraphValidationError) as info:
        run_nodes(image_executor, {"img": solid((9, 9, 9), 4, 4), "a": {
            "type": "image.resize", "inputs": {"image": {"from": "img.image"}}}, "b": {
            "type": "image.resize", "inputs": {"image": {"from": "img.image"}, "scale": 2.0, "width": 4}}})
    assert {(i.node, i.input, i.message) for i in info.value.issues} == {
        ("a", "width", "give width, height, scale or megapixels"),
        ("b", "scale", "give either scale or width/height, not both")}


def test_caption_with_and_without_prompt(image_executor: Session, solid: Callable) -> None:
    import torch

    document_nodes = {"cap": {"type": "image.caption", "inputs": {"image": {"input": "picture"},
                                                                  "model": "tiny/blip", "max_new_tokens": 6}},
                      "ask": {"type": "image.caption", "inputs": {"image": {"input": "picture"}, "model": "tiny/blip",
                                                                  "prompt": "a photo of", "max_new_tokens": 6}}}
    from nodeforge.engine.document import parse_document

    document = parse_document({"inputs": {"picture": {"type": "image"}}, "nodes": document_nodes})
    batch = Image(torch.cat([Image.from_pil([draw_picture(64)]).tensor, torch.zeros(1, 3, 64, 64)]))
    values = succeeded(image_executor.run(document, {"picture": batch}))
    assert len(values["cap.texts"]) == 2 and all(values["cap.texts"])
    assert values["cap.text"] == "\n".join(values["cap.texts"])
    assert all(text.startswith("a photo of") for text in values["ask.texts"])
    again = succeeded(image_executor.run(document, {"picture": batch}))
    assert again["cap.texts"] == values["cap.texts"]
    with pytest.raises(GraphValidationError, match="model 'realesrgan-x4plus' is a esrgan model; this node takes "
                                                   "blip models"):
        run_nodes(image_executor, {"img": solid((1, 2, 3), 8, 8), "cap": {"type": "image.caption", "inputs": {
            "image": {"from": "img.image"}, "model": "realesrgan-x4plus"}}})


def test_load_takes_an_uploaded_artifact_id(image_executor: Session) -> None:
    from nodeforge.engine.artifact_paths import artifact_files, new_artifact_id

    artifact = new_artifact_id()
    folder = artifact_files(image_executor.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    draw_picture(24).save(folder / f"{artifact}.png")
    for reference in (artifact, f"/api/artifacts/{artifact}"):
        values = succeeded(run_nodes(image_executor, {"img": {"type": "image.load", "inputs": {"path": reference}}}))
        assert tuple(values["img.image"].tensor.shape) == (1, 3, 24, 24)
