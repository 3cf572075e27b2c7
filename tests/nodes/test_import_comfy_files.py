"""Every file a ComfyUI workflow names becomes a graph input with the workflow's file name as its default (model,
ControlNet, upscaler, LoRA list, loaded picture), so ``--set`` alone swaps each for a tiny stand-in; a hires fix
whose second size is a multiple of the first follows the graph's width and height. The imports run on tiny models in
a fresh data folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from nodeforge.nodes.importers import import_comfy
from tests.nodes.import_support import run_imported

DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"


def hires_by_size() -> dict[str, Any]:
    """ComfyUI's default workflow with ComfyUI_examples' latent hires fix: LatentUpscale to 768x768, then a second
    KSampler at denoise 0.5 (the sizes and steps of hiresfix_latent_workflow, shrunk to a 512 first pass)."""
    workflow: dict[str, Any] = json.loads((DATA / "default_api.json").read_text())
    workflow["10"] = {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "upscale_method":
                      "nearest-exact", "width": 768, "height": 768, "crop": "disabled"}}
    workflow["11"] = {"class_type": "KSampler", "inputs": {**workflow["3"]["inputs"], "latent_image": ["10", 0],
                                                           "denoise": 0.5}}
    workflow["12"] = {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 2]}}
    workflow["13"] = {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "hires"}}
    return workflow


def test_a_hires_fix_by_size_follows_the_graphs_width_and_height(tmp_path: Path, shared_models_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    result = import_comfy(hires_by_size())
    resize = next(node["inputs"] for node in result.document["nodes"].values() if node["type"] == "image.resize")
    assert resize == {"image": {"from": "generate_3.image"}, "filter": "nearest", "scale": 1.5}
    assert any("768x768 is 1.5 times the first pass's 512x512" in warning for warning in result.warnings)
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    record = run_imported(result.document, tmp_path, ["model=tiny/sd", "width=64", "height=64", "steps=2"], capsys)
    with PILImage.open(record["outputs"]["image_2"]["path"]) as second:
        assert second.size == (96, 96)


def test_a_size_rounded_from_a_factor_follows_it_and_says_the_size_it_makes() -> None:
    """ComfyUI_examples' 2_pass_pose_worship: 1280x704, then 1920x1088 (704 x 1.5 rounded up to a multiple of 64)."""
    workflow = hires_by_size()
    workflow["5"]["inputs"].update(width=1280, height=704)
    workflow["10"]["inputs"].update(width=1920, height=1088)
    result = import_comfy(workflow)
    resize = next(node["inputs"] for node in result.document["nodes"].values() if node["type"] == "image.resize")
    assert resize["scale"] == 1.5
    assert any("1920x1088 is about 1.5 times the first pass's 1280x704: resized by 1.5 (1920x1056 at the "
               "workflow's size)" in warning for warning in result.warnings)


def test_a_size_that_is_no_multiple_of_the_first_pass_stays_as_written() -> None:
    workflow = hires_by_size()
    workflow["10"]["inputs"]["height"] = 640
    resize = next(node["inputs"] for node in import_comfy(workflow).document["nodes"].values()
                  if node["type"] == "image.resize")
    assert resize["width"] == 768 and resize["height"] == 640 and "scale" not in resize


def test_a_controlnet_workflow_runs_with_its_files_swapped_by_set_alone(tmp_path: Path, shared_models_dir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """ComfyUI_examples' scribble ControlNet picture: checkpoint, ControlNet file and input picture are inputs."""
    document = import_comfy((DATA / "controlnet_example.png").read_bytes()).document
    assert {name: decl["default"] for name, decl in document["inputs"].items()
            if name in ("model", "controlnet", "image")} == {
        "model": "Anything-V3.0.ckpt", "controlnet": "control_scribble.safetensors",
        "image": "input_scribble_example.png"}
    picture = tmp_path / "scribble.png"
    PILImage.new("RGB", (64, 64), (255, 255, 255)).save(picture)
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    sets = ["model=tiny/sd", "controlnet=tiny/controlnet", f"image={picture}", "vae=", "width=64", "height=64",
            "steps=2"]
    record = run_imported(document, tmp_path, sets, capsys)
    assert record["status"] == "succeeded"
