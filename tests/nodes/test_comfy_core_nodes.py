"""Nodes for ComfyUI core classes that had no equivalent: image.resize by megapixels (ImageScaleToTotalPixels),
image.repeat (RepeatImageBatch) and mask.to_image (MaskToImage), and their imports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.session import Session
from nodeforge.engine.values import Image
from nodeforge.nodes.importers import import_comfy
from tests.nodes.image_support import succeeded

DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"


def run(session: Session, nodes: dict[str, object], picture: torch.Tensor) -> dict[str, object]:
    document = parse_document({"inputs": {"picture": {"type": "image"}}, "nodes": nodes})
    return succeeded(session.run(document, {"picture": Image(picture)}))


def test_megapixels_resizes_as_comfyui_scales_to_total_pixels(session: Session) -> None:
    values = run(session, {"r": {"type": "image.resize", "inputs": {"image": {"input": "picture"}, "megapixels": 1.0}}},
                 torch.rand(1, 3, 480, 640))
    assert tuple(values["r.image"].tensor.shape) == (1, 3, 887, 1182)  # type: ignore[attr-defined]
    with pytest.raises(GraphValidationError) as info:
        session.run(parse_document({"inputs": {"picture": {"type": "image"}}, "nodes": {"r": {
            "type": "image.resize", "inputs": {"image": {"input": "picture"}, "megapixels": 1.0, "scale": 2.0}}}}))
    assert [(issue.node, issue.input, issue.message) for issue in info.value.issues] == [
        ("r", "megapixels", "give either megapixels, scale or width/height, not more than one")]


def test_repeat_and_mask_to_image(session: Session) -> None:
    picture = torch.rand(2, 3, 8, 8)
    values = run(session, {
        "rep": {"type": "image.repeat", "inputs": {"image": {"input": "picture"}, "times": 3}},
        "m": {"type": "mask.from_image", "inputs": {"image": {"input": "picture"}, "channel": "green"}},
        "back": {"type": "mask.to_image", "inputs": {"mask": {"from": "m.mask"}}}}, picture)
    repeated = values["rep.image"].tensor  # type: ignore[attr-defined]
    assert tuple(repeated.shape) == (6, 3, 8, 8) and torch.equal(repeated[4:], picture)
    grey = values["back.image"].tensor  # type: ignore[attr-defined]
    assert tuple(grey.shape) == (2, 3, 8, 8)
    assert torch.allclose(grey[:, 0], picture[:, 1]) and torch.equal(grey[:, 0], grey[:, 2])


def test_the_comfyui_classes_import_onto_them() -> None:
    workflow = json.loads((DATA / "default_api.json").read_text())
    workflow["20"] = {"class_type": "ImageScaleToTotalPixels",
                      "inputs": {"image": ["8", 0], "upscale_method": "bilinear", "megapixels": 0.5}}
    workflow["21"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["20", 0], "amount": 2}}
    workflow["22"] = {"class_type": "ImageToMask", "inputs": {"image": ["21", 0], "channel": "red"}}
    workflow["23"] = {"class_type": "MaskToImage", "inputs": {"mask": ["22", 0]}}
    workflow["9"]["inputs"]["images"] = ["23", 0]
    result = import_comfy(json.dumps(workflow).encode())
    nodes = {node["type"]: node["inputs"] for node in result.document["nodes"].values()}
    assert nodes["image.resize"]["megapixels"] == 0.5 and nodes["image.resize"]["filter"] == "bilinear"
    assert nodes["image.repeat"]["times"] == 2
    assert nodes["mask.to_image"]["mask"]["from"].endswith(".mask")
    assert result.warnings == []
