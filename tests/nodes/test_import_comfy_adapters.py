"""cubiq's IP-Adapter nodes, ControlNet-Union types and controlnet_aux preprocessors import onto nodeforge's
``image.ip_adapter``, ``image.controlnet`` ``mode``, ``image.canny`` and ``image.depth``, with what differs in a note;
the IP-Adapter workflow runs on tiny models with its files given through --set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from nodeforge.engine.cli import main
from nodeforge.nodes.importers import ImportFailed, import_comfy

DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"


def default_api() -> dict[str, Any]:
    return dict(json.loads((DATA / "default_api.json").read_text()))


def with_ip_adapter(preset: str = "PLUS (high strength)") -> dict[str, Any]:
    """ComfyUI_IPAdapter_plus's ipadapter_simple example on ComfyUI's default workflow: UnifiedLoader + IPAdapter."""
    workflow = default_api()
    workflow["20"] = {"class_type": "IPAdapterUnifiedLoader", "inputs": {"model": ["4", 0], "preset": preset}}
    workflow["21"] = {"class_type": "LoadImage", "inputs": {"image": "warrior_woman.png", "upload": "image"}}
    workflow["22"] = {"class_type": "IPAdapter", "inputs": {"model": ["20", 0], "ipadapter": ["20", 1],
                                                            "image": ["21", 0], "weight": 0.8, "start_at": 0.0,
                                                            "end_at": 1.0, "weight_type": "standard"}}
    workflow["3"]["inputs"]["model"] = ["22", 0]
    return workflow


def test_an_ip_adapter_becomes_a_control_of_the_pass_that_samples_the_adapted_model() -> None:
    document = import_comfy(with_ip_adapter()).document
    assert document["nodes"]["ip_adapter_22"] == {"type": "image.ip_adapter", "inputs": {
        "image": {"from": "load_21.image"}, "model": {"input": "ip_adapter"}, "weight": 0.8}}
    assert document["inputs"]["ip_adapter"]["default"] == "ip-adapter-plus-sd15"  # the preset's file, as an alias
    assert document["nodes"]["generate_3"]["inputs"]["controls"] == [{"from": "ip_adapter_22.control"}]


def test_a_preset_nodeforge_has_no_adapter_for_is_named() -> None:
    with pytest.raises(ImportFailed, match=r"node 20 \(IPAdapterUnifiedLoader\): the IP-Adapter preset 'PLUS FACE "):
        import_comfy(with_ip_adapter("PLUS FACE (portraits)"))


def test_an_ip_adapter_workflow_runs_on_tiny_models(tmp_path: Path, shared_models_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps(import_comfy(with_ip_adapter()).document))
    picture = tmp_path / "reference.png"
    PILImage.new("RGB", (64, 64), (200, 40, 40)).save(picture)
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    code = main(["run", str(graph), "--json", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
                 "--set", "model=tiny/sd", "--set", "ip_adapter=tiny/ip_adapter", "--set", f"image={picture}",
                 "--set", "width=64", "--set", "height=64", "--set", "steps=2"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0, record.get("error")


def test_union_types_and_preprocessors_map_to_control_nodes() -> None:
    workflow = default_api()
    workflow["30"] = {"class_type": "LoadImage", "inputs": {"image": "room.png", "upload": "image"}}
    workflow["31"] = {"class_type": "CannyEdgePreprocessor", "inputs": {"image": ["30", 0], "low_threshold": 80,
                                                                        "high_threshold": 160, "resolution": 512}}
    workflow["32"] = {"class_type": "MiDaS-DepthMapPreprocessor", "inputs": {"image": ["30", 0], "a": 6.28,
                                                                             "bg_threshold": 0.1, "resolution": 512}}
    workflow["33"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "union_sdxl.safetensors"}}
    workflow["34"] = {"class_type": "SetUnionControlNetType", "inputs": {"control_net": ["33", 0],
                                                                         "type": "canny/lineart/anime_lineart/mlsd"}}
    workflow["35"] = {"class_type": "ControlNetApply", "inputs": {"conditioning": ["6", 0], "control_net": ["34", 0],
                                                                  "image": ["31", 0], "strength": 0.7}}
    workflow["36"] = {"class_type": "PreviewImage", "inputs": {"images": ["32", 0]}}
    workflow["3"]["inputs"]["positive"] = ["35", 0]
    result = import_comfy(workflow)
    nodes = result.document["nodes"]
    assert nodes["canny_31"]["inputs"] == {"image": {"from": "load_30.image"}, "low": 80, "high": 160}
    assert nodes["controlnet_35"]["inputs"]["mode"] == "canny"
    assert nodes["depth_32"]["inputs"]["model"] == {"input": "depth"}
    assert any("node 32 (MiDaS-DepthMapPreprocessor): depth is estimated with nodeforge's image.depth" in warning
               for warning in result.warnings)
    assert any("resolution 512 is not carried over" in warning for warning in result.warnings)
