"""image.canny and image.depth (with tiny/depth: a Depth Anything layout through the real transformers code)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.session import RunResult, Session
from nodeforge.engine.values import Image
from tests.nodes.image_support import draw_picture, image_executor, pixels, resident, run_nodes, succeeded

__all__ = ["image_executor"]


def run_on(session: Session, nodes: dict[str, Any], **pictures: Image) -> RunResult:
    """Run ``nodes`` with the pictures as graph inputs of type image."""
    inputs = {name: {"type": "image"} for name in pictures}
    return session.run(parse_document({"inputs": inputs, "nodes": nodes}), pictures)


def node(type_id: str, **inputs: Any) -> dict[str, Any]:
    return {"type": type_id, "inputs": inputs}


def square(size: int = 64, start: int = 16, end: int = 48, inside: float = 1.0, outside: float = 0.0) -> Image:
    """A grey square (rows and columns ``start..end-1``) on a flat ground, as an RGB picture."""
    import torch

    plane = torch.full((1, 3, size, size), outside)
    plane[:, :, start:end, start:end] = inside
    return Image(plane)


def test_canny_finds_the_square_and_nothing_in_flat_areas(image_executor: Session) -> None:
    values = succeeded(run_on(image_executor, {"c": node("image.canny", image={"input": "picture"})},
                              picture=square()))
    edges = pixels(values["c.image"])[0]
    assert tuple(edges.shape) == (3, 64, 64)
    assert edges[0].equal(edges[1]) and edges[0].equal(edges[2]), "white on black: the three channels agree"
    assert set(edges.unique().tolist()) == {0, 255}
    found = edges[0] > 0
    ring = found.clone()
    ring[14:50, 14:50] = False
    assert not ring.any(), "nothing outside the square's border"
    assert not found[19:45, 19:45].any(), "nothing inside the flat square"
    for line in range(18, 46):  # every row and column crossing the square has an edge on both of its sides
        assert found[line, 14:19].any() and found[line, 45:50].any(), line
        assert found[14:19, line].any() and found[45:50, line].any(), line


def test_canny_thresholds_decide_which_edges_count(image_executor: Session) -> None:
    faint = square(inside=60 / 255, outside=40 / 255)
    nodes = {"strict": node("image.canny", image={"input": "picture"}),
             "loose": node("image.canny", image={"input": "picture"}, low=10, high=20),
             "grey": node("image.canny", image={"input": "grey"}, low=10, high=20)}
    values = succeeded(run_on(image_executor, nodes, picture=faint, grey=Image(faint.tensor[:, :1].contiguous())))
    assert int(pixels(values["strict.image"]).max()) == 0, "a step of 20 levels is below high=200"
    assert int(pixels(values["loose.image"]).max()) == 255
    assert pixels(values["grey.image"]).equal(pixels(values["loose.image"])), "a one-channel picture works too"


def test_canny_low_above_high_is_refused(image_executor: Session) -> None:
    with pytest.raises(GraphValidationError) as info:
        run_on(image_executor, {"c": node("image.canny", image={"input": "picture"}, low=150, high=120),
                                "d": node("image.canny", image={"input": "picture"}, high=50)}, picture=square())
    assert {(issue.node, issue.input, issue.message) for issue in info.value.issues} == {
        ("c", "high", "high (120) is below low (150); an edge starts above high and continues above low, so high "
                      "must be at least low"),
        ("d", "high", "high (50) is below low (100); an edge starts above high and continues above low, so high "
                      "must be at least low")}


def test_canny_thresholds_from_links_are_checked_before_running(image_executor: Session) -> None:
    result = run_on(image_executor, {"low": node("int.value", value=300),
                                     "c": node("image.canny", image={"input": "picture"}, low={"from": "low.value"})},
                    picture=square())
    assert result.record.status == "failed"
    assert "input 'high': high (200) is below low (300)" in result.record.nodes["c"].error


def test_depth_is_the_input_size_in_0_to_1_and_near_is_bright(image_executor: Session) -> None:
    import torch

    batch = Image(torch.cat([Image.from_pil([draw_picture(70).crop((0, 0, 70, 41))]).tensor,
                             torch.rand(1, 3, 41, 70)]))
    nodes = {"d": node("image.depth", image={"input": "picture"}, model="tiny/depth")}
    values = succeeded(run_on(image_executor, nodes, picture=batch))
    depth = values["d.image"].tensor
    assert tuple(depth.shape) == (2, 3, 41, 70), "resized back to the input's size, not the model's"
    assert depth[:, 0].equal(depth[:, 1]) and depth[:, 0].equal(depth[:, 2])
    for index in range(2):  # each picture scaled on its own: nearest 1, farthest 0
        assert float(depth[index].min()) == 0.0 and float(depth[index].max()) == pytest.approx(1.0)
    again = succeeded(run_on(image_executor, nodes, picture=batch))["d.image"].tensor
    assert again.equal(depth), "the same picture gives the same depth map"
    assert len([key for key in resident(image_executor) if key.startswith("depth:")]) == 1, "loaded once"


def test_near_is_bright_turns_metric_distances_round() -> None:
    import torch

    from nodeforge.nodes.control_images import near_is_bright

    predicted = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])
    relative = near_is_bright(predicted, (2, 2), metric=False)
    metric = near_is_bright(predicted, (2, 2), metric=True)
    assert torch.allclose(relative, torch.tensor([[[[0.0, 0.25], [0.5, 1.0]]]]), atol=1e-6)
    assert torch.allclose(metric, 1 - relative, atol=1e-6)
    assert near_is_bright(torch.ones(2, 1, 3, 3), (6, 6), metric=False).equal(torch.zeros(2, 1, 6, 6))


def test_depth_takes_only_depth_models(image_executor: Session) -> None:
    with pytest.raises(GraphValidationError) as info:
        run_on(image_executor, {"d": node("image.depth", image={"input": "picture"}, model="tiny/sd"),
                                "e": node("image.depth", image={"input": "picture"}, model="tiny/nothing")},
               picture=square())
    issues = {(issue.node, issue.input): issue.message for issue in info.value.issues}
    assert issues[("d", "model")] == "model 'tiny/sd' is a sd model; this node takes depth models"
    assert issues[("e", "model")].startswith("unknown tiny model 'tiny/nothing' (tiny models: ")


def test_a_folder_that_is_not_a_depth_model_is_a_clear_error(image_executor: Session, tmp_path: Path) -> None:
    from nodeforge.nodes.models import build_resolver

    blip = build_resolver().resolve("tiny/blip", None).path
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, reason in ((blip, "could not be loaded as a depth-estimation model: ValueError: "),
                           (empty, "could not be loaded as a depth-estimation model: ")):
        result = run_on(image_executor, {"d": node("image.depth", image={"input": "picture"}, model=str(folder))},
                        picture=square(16, 4, 8))
        error = result.record.nodes["d"].error
        assert error.startswith(f"node 'd' (image.depth), input 'model': model '{folder}' ({folder}) {reason}")
        assert error.endswith("accepted: transformers depth models (depth-anything-small, dpt-hybrid-midas, "
                              "tiny/depth, or such a folder)")


def test_depth_aliases_and_the_default_are_depth_models() -> None:
    from nodeforge.nodes.control_images import Depth
    from nodeforge.nodes.models import build_resolver

    resolver = build_resolver()
    assert Depth.Inputs.model_fields["model"].default == "depth-anything-small"
    aliases = resolver.aliases(None)
    assert aliases["depth-anything-small"].target == "depth-anything/Depth-Anything-V2-Small-hf"
    assert aliases["dpt-hybrid-midas"].target == "Intel/dpt-hybrid-midas"
    assert {resolver.family_of(name) for name in ("depth-anything-small", "dpt-hybrid-midas", "tiny/depth")} == {
        "depth"}
    assert resolver.problem("depth-anything-small", families=("depth",)) is None


def test_tiny_depth_builds_the_same_bytes_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nodeforge.nodes.models import build_resolver

    digests = []
    for place in ("one", "two"):
        monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(tmp_path / place))
        folder = build_resolver().resolve("tiny/depth", None).path
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
                        if p.suffix in (".safetensors", ".json")})
    assert digests[0] == digests[1] and "model.safetensors" in digests[0]
    config = json.loads((folder / "config.json").read_text())
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert config["model_type"] == "depth_anything" and config["backbone_config"]["model_type"] == "dinov2"
    assert processor["ensure_multiple_of"] == 14 and processor["keep_aspect_ratio"] is True


def test_depth_links_into_a_graph_from_a_loaded_picture(image_executor: Session, tmp_path: Path) -> None:
    draw_picture(30).save(tmp_path / "pic.png")
    values = succeeded(run_nodes(image_executor, {
        "img": node("image.load", path=str(tmp_path / "pic.png")),
        "d": node("image.depth", image={"from": "img.image"}, model="tiny/depth"),
        "c": node("image.canny", image={"from": "img.image"}),
        "grid": node("image.grid", images=[{"from": "d.image"}, {"from": "c.image"}], gap=0)}))
    assert tuple(values["grid.image"].tensor.shape) == (1, 3, 30, 60)
