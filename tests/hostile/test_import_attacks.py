"""``POST /api/import`` attacked with files built here: A1111 parameters that made the old regular expressions
backtrack (a 40 KB PNG froze the server for 17 s), a 13,000-pixel square PNG (657 KB that Pillow decoded to
676 MB), a zTXt chunk that inflates without end, deep and NaN/Infinity workflows, ``Seed: 1e999``, fields of the
wrong type, chains of thousands of nodes and a 3 MB workflow of 14,000 nodes (21 s before: the import was
quadratic). Each hostile file must be a 4xx in time and within the memory budget; the large valid ones a 200,
measured the same way."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.hostile.support import HostileServer, assert_contained
from tests.nodes.import_support import (
    SETTINGS,
    api_with,
    backtracking_parameters,
    default_api,
    many_pipelines,
    png,
    reroute_chain,
    scale_chain,
    ztxt_png,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"


@pytest.fixture(scope="module", autouse=True)
def warm(server: HostileServer) -> Iterator[None]:
    """One import before the attacks, so the importer's own first imports are not counted against them."""
    assert send(server, "default_api.json", (DATA / "default_api.json").read_bytes()).status_code == 200
    yield


def send(server: HostileServer, name: str, data: bytes) -> httpx2.Response:
    return server.request("POST", "/api/import", files={"file": (name, data, "application/octet-stream")})


def attack(server: HostileServer, label: str, name: str, data: bytes) -> dict[str, Any]:
    response = server.attack(f"import: {label} ({_size(data)})", "POST", "/api/import",
                             files={"file": (name, data, "application/octet-stream")})
    assert response.status_code == 422
    body: dict[str, Any] = response.json()
    return body


def _size(data: bytes) -> str:
    if len(data) >= 1e6:
        return f"{len(data) / 1e6:.1f} MB"
    return f"{len(data) / 1e3:.0f} KB" if len(data) >= 1e3 else f"{len(data)} B"


def test_a_backtracking_settings_line(server: HostileServer) -> None:
    """40 KB of one word where A1111 writes its settings: the old expression tried every start and every length."""
    text = backtracking_parameters(40_000)["settings"]
    body = attack(server, "A1111, 40 KB settings, no colon", "bomb.png", png(before={"parameters": text}))
    assert "has no settings line" in body["detail"]


@pytest.mark.parametrize("part", ["tags", "blanks"])
def test_backtracking_prompts_import(server: HostileServer, part: str) -> None:
    """Unclosed LoRA tags and a run of blanks in an otherwise valid picture: read in one pass, imported as text."""
    data = png(before={"parameters": backtracking_parameters(40_000)[part]})
    with server.measure(f"import: A1111, 40 KB backtracking {part}") as row:
        response = send(server, "bomb.png", data)
        row.answer = f"{response.status_code} {response.json().get('source')}"
    assert_contained(row)
    assert response.status_code == 200


@pytest.mark.parametrize(("label", "data", "reason"), [
    ("A1111, 15 MB parameters", png(before={"parameters": "a" * 15_000_000}),
     "the PNG's 'parameters' text is longer than 262,144 characters"),
    ("zTXt inflating to 256 MB", ztxt_png("workflow", 1 << 28),
     "the PNG's 'workflow' text is longer than 8,388,608 characters"),
    ("PNG 13000x13000, no workflow", png(13_000, 13_000, after={"Software": "x"}),
     "this PNG carries no workflow"),
], ids=["15 MB parameters", "zTXt bomb", "13000 px"])
def test_pngs_that_expand(server: HostileServer, label: str, data: bytes, reason: str) -> None:
    assert len(data) < 16_000_000
    assert reason in attack(server, label, "bomb.png", data)["detail"]


def test_a_13000_pixel_png_with_parameters_imports_without_decoding(server: HostileServer) -> None:
    """The same picture carrying A1111 parameters after its pixels (where Pillow had to decode it to reach them)."""
    data = png(13_000, 13_000, after={"parameters": "a fox\n" + SETTINGS})
    with server.measure(f"import: PNG 13000x13000 + A1111 ({_size(data)})") as row:
        response = send(server, "big.png", data)
        row.answer = f"{response.status_code} {response.json().get('source')}"
    assert_contained(row)
    assert response.status_code == 200 and response.json()["document"]["inputs"]["prompt"]["default"] == "a fox"


def ui_with(**fields: Any) -> bytes:
    workflow = json.loads((DATA / "default_ui.json").read_text())
    encoder = next(node for node in workflow["nodes"] if node["type"] == "CLIPTextEncode")
    encoder.update(fields)
    return json.dumps(workflow).encode()


@pytest.mark.parametrize(("label", "data", "issue"), [
    ("JSON 100,000 deep", b"[" * 100_000 + b"]" * 100_000, None),
    ("NaN cfg", api_with("3", "cfg", math.nan), ("3", "cfg")),
    ("Infinity seed", api_with("3", "seed", math.inf), ("3", "seed")),
    ("steps 1e300", api_with("3", "steps", 1e300), ("3", "steps")),
    ("inputs not a list", ui_with(inputs=5), ("7", "clip")),
    ("A1111 Seed: 1e999", png(before={"parameters": "a fox\n" + SETTINGS.replace("Seed: 5", "Seed: 1e999")}), None),
], ids=["deep", "NaN", "Infinity", "1e300", "not a list", "Seed 1e999"])
def test_hostile_workflows(server: HostileServer, label: str, data: bytes, issue: tuple[str, str] | None) -> None:
    body = attack(server, label, "hostile.png" if data.startswith(b"\x89PNG") else "hostile.json", data)
    if issue is not None:
        assert [(item["node"], item["input"]) for item in body["issues"]] == [issue]


@pytest.mark.parametrize(("label", "workflow", "nodes"), [
    ("3,000 ImageScaleBy chained", scale_chain(3000), 3002),
    ("5,000 Reroutes chained", reroute_chain(5000), 2),
    ("14,000 nodes", many_pipelines(2000), 4000),
], ids=["scale chain", "reroute chain", "14000 nodes"])
def test_large_valid_workflows_import(server: HostileServer, label: str, workflow: dict[str, Any],
                                      nodes: int) -> None:
    data = json.dumps(workflow).encode()
    with server.measure(f"import: {label} ({_size(data)})") as row:
        response = send(server, "large.json", data)
        row.answer = f"{response.status_code} {len(response.json().get('document', {}).get('nodes', {}))} nodes"
    assert_contained(row)
    assert response.status_code == 200 and len(response.json()["document"]["nodes"]) == nodes


def test_a_lora_chain_over_the_cap(server: HostileServer) -> None:
    workflow = default_api()
    previous = "4"
    for index in range(100, 400):
        workflow[str(index)] = {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": [previous, 0], "lora_name": f"l{index}.safetensors", "strength_model": 1.0}}
        previous = str(index)
    workflow["3"]["inputs"]["model"] = [previous, 0]
    body = attack(server, "300 LoRAs in a chain", "loras.json", json.dumps(workflow).encode())
    assert [(item["node"], item["input"]) for item in body["issues"]] == [("164", "model")]
