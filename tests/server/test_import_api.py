"""POST /api/import: a ComfyUI workflow or an A1111 PNG uploaded as a file comes back as a nodeforge document that
the server accepts; what cannot be imported is a 422 in the documented error shape, naming each node."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo
from starlette.testclient import TestClient

DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"


def post(client: TestClient, name: str, data: bytes, **params: str) -> dict:
    response = client.post("/api/import", params=params, files={"file": (name, data, "application/octet-stream")})
    return {"status": response.status_code, **response.json()}


def test_a_comfy_png_comes_back_as_a_document_the_library_saves(client: TestClient) -> None:
    answer = post(client, "controlnet_example.png", (DATA / "controlnet_example.png").read_bytes())
    assert answer["status"] == 200 and answer["source"] == "comfy-png+ui" and answer["unmapped"] == []
    document = answer["document"]
    assert document["name"] == "controlnet_example"
    assert {node["type"] for node in document["nodes"].values()} == {
        "image.load", "image.controlnet", "image.generate", "image.save"}
    assert document["nodes"]["controlnet_10"]["inputs"]["weight"] == 0.9
    assert document["ui"]["positions"]["generate_3"] == [842, 150]
    default = post(client, "default_api.json", (DATA / "default_api.json").read_bytes())["document"]
    saved = client.put("/api/graphs/from-comfy", json=default)
    assert saved.status_code == 201, saved.text


def test_an_a1111_png_is_recognised_by_its_parameters_chunk(client: TestClient) -> None:
    info = PngInfo()
    info.add_text("parameters", "a fox\nSteps: 4, Sampler: Euler a, CFG scale: 6, Seed: 5, Size: 64x64, "
                                "Model: dreamshaper_8")
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    answer = post(client, "fox.png", buffer.getvalue())
    assert answer["status"] == 200 and answer["source"] == "a1111"
    assert answer["document"]["inputs"]["model"]["default"] == "dreamshaper_8.safetensors"
    assert answer["document"]["nodes"]["generate"]["inputs"]["sampler"] == "euler_ancestral"


def test_unmapped_nodes_are_a_422_naming_each_and_partial_keeps_the_rest(client: TestClient) -> None:
    workflow = json.loads((DATA / "default_api.json").read_text())
    workflow["10"] = {"class_type": "UltimateSDUpscale", "inputs": {"image": ["8", 0]}}
    workflow["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0]}}
    data = json.dumps(workflow).encode()
    refused = post(client, "custom.json", data)
    assert refused == {"status": 422,
                       "detail": "1 node(s) cannot be mapped to nodeforge nodes (a partial import, --partial or "
                                 "partial=true, keeps the rest)",
                       "issues": [{"node": "10", "input": None, "code": "unmapped_node",
                                   "message": "UltimateSDUpscale: no nodeforge equivalent"}]}
    kept = post(client, "custom.json", data, partial="true")
    assert kept["status"] == 200 and set(kept["document"]["nodes"]) == {"generate_3", "save_9"}
    assert [item["id"] for item in kept["unmapped"]] == ["10", "11"]


def test_files_that_are_not_workflows_are_422s_with_the_reason(client: TestClient) -> None:
    assert post(client, "x.json", b"{oops") == {
        "status": 422, "detail": "the file is neither a PNG nor JSON (Expecting property name enclosed in double "
                                 "quotes: line 1 column 2 (char 1))"}
    cycle = json.dumps({"1": {"class_type": "A", "inputs": {"x": ["2", 0]}},
                        "2": {"class_type": "B", "inputs": {"x": ["1", 0]}}}).encode()
    assert post(client, "c.json", cycle)["detail"] == "the workflow has a cycle: 1 (A) -> 2 (B) -> 1 (A)"
    assert post(client, "empty.json", b"")["detail"] == "the file is empty"
    assert post(client, "a.png", (DATA / "default_api.json").read_bytes(), kind="a1111")["detail"] == (
        "an A1111 import takes the PNG that A1111 or Forge saved (this file is not a PNG)")
    no_file = client.post("/api/import")
    assert no_file.status_code == 422 and no_file.json()["issues"][0]["code"] == "request"
    for scalar in (b"true", b"1", b'"x"', b"null"):  # JSON, but no object: schemathesis found 'true' a 500
        assert post(client, "s.json", scalar)["status"] == 422, scalar


def test_hostile_workflows_are_422s_naming_the_node_and_input(client: TestClient) -> None:
    """A NaN cfg (which imported as a null guidance) and deep JSON (a 500) are refused with the node, the input and
    the reason; a damaged PNG is named in words, not by a Python object's repr."""
    workflow = json.loads((DATA / "default_api.json").read_text())
    workflow["3"]["inputs"]["cfg"] = float("nan")
    answer = post(client, "nan.json", json.dumps(workflow).encode())
    assert answer["status"] == 422
    assert answer["issues"] == [{"node": "3", "input": "cfg", "code": "unmapped_node",
                                 "message": "KSampler: input 'cfg' is nan, not a finite number"}]
    assert post(client, "deep.json", b"[" * 50_000 + b"]" * 50_000) == {
        "status": 422, "detail": "the file nests its JSON more than 64 levels deep"}
    assert post(client, "bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 12) == {
        "status": 422, "detail": "the PNG is damaged: at byte 8 it holds no chunk (a chunk's type is four letters)"}
