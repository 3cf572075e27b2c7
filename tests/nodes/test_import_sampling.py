"""What ComfyUI workflows tell a sampler, carried onto the diffusion node: the sampler and scheduler names
(reproduced ones as ``sampler``/``sigma_schedule``, the rest named in the import note), CLIPSetLastLayer as
``clip_layer`` and ModelSamplingFlux/SD3's shift as ``flow_shift``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nodeforge.nodes.importers import import_comfy

DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"


def workflow(**changes: Any) -> dict[str, Any]:
    document = json.loads((DATA / "default_api.json").read_text())
    for node_id, node in changes.items():
        document[node_id] = node
    return document


def generate_inputs(document: dict[str, Any]) -> dict[str, Any]:
    result = import_comfy(json.dumps(document).encode())
    (node,) = [n for n in result.document["nodes"].values() if n["type"] == "image.generate"]
    return {**node["inputs"], "_warnings": result.warnings, "_defaults": {
        name: spec.get("default") for name, spec in result.document.get("inputs", {}).items()}}


@pytest.mark.parametrize(("sampler", "scheduler"), [("euler_ancestral", "karras"), ("dpmpp_2m_sde_gpu", "exponential"),
                                                    ("uni_pc", "sgm_uniform"), ("ddim", "ddim_uniform")])
def test_reproduced_pairs_become_sampler_and_sigma_schedule(sampler: str, scheduler: str) -> None:
    document = workflow()
    document["3"]["inputs"].update(sampler_name=sampler, scheduler=scheduler)
    inputs = generate_inputs(document)
    assert (inputs["sampler"], inputs["sigma_schedule"]) == (sampler.removesuffix("_gpu"), scheduler)
    assert "scheduler" not in inputs
    assert bool(inputs["_warnings"]) == sampler.endswith("_gpu")  # the GPU tree's noise is named, nothing else


def test_a_pair_nodeforge_does_not_reproduce_is_named_in_the_note() -> None:
    document = workflow()
    document["3"]["inputs"].update(sampler_name="euler_cfg_pp", scheduler="normal")
    inputs = generate_inputs(document)
    assert "sampler" not in inputs and inputs["scheduler"] == "euler"
    assert any("euler_cfg_pp" in warning and "euler" in warning for warning in inputs["_warnings"])


def test_clip_set_last_layer_and_model_sampling_reach_the_node() -> None:
    document = workflow(**{
        "20": {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["4", 1], "stop_at_clip_layer": -2}},
        "21": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["4", 0], "max_shift": 1.15,
                                                              "base_shift": 0.5, "width": 512, "height": 512}}})
    document["6"]["inputs"]["clip"] = ["20", 0]
    document["7"]["inputs"]["clip"] = ["20", 0]
    document["3"]["inputs"]["model"] = ["21", 0]
    inputs = generate_inputs(document)
    assert inputs["clip_layer"] == -2
    assert inputs["flow_shift"] == pytest.approx(0.5 + (1.15 - 0.5) / (4096 - 256) * (512 * 512 / 256 - 256))


def test_an_inpainting_workflow_samples_as_comfyui_and_names_what_its_encoder_does_differently() -> None:
    result = import_comfy((DATA / "inpaint_example.png").read_bytes())
    (inpaint,) = [n["inputs"] for n in result.document["nodes"].values() if n["type"] == "image.inpaint"]
    assert (inpaint["sampler"], inpaint["sigma_schedule"]) == ("uni_pc_bh2", "normal")
    assert result.warnings == [
        "node 26 (VAEEncodeForInpaint): the picture is encoded as it is: VAEEncodeForInpaint's grey fill of the masked "
        "area (and its mask growth by 6 pixels) is not reproduced, so the repainted area differs from ComfyUI's"]
