"""Dropping another tool's work on the editor: a ComfyUI PNG and a ComfyUI UI-format JSON become nodeforge nodes on
the canvas (through POST /api/import) with the workflow's values and positions; a workflow with a node that does not
map is refused with that node named."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Shots

pytestmark = pytest.mark.e2e
DATA = Path(__file__).resolve().parents[1] / "data" / "comfy"


def drop(page: Any, name: str, data: bytes, mime: str) -> None:
    page.evaluate("""([name, data, mime]) => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: mime}));
        const wrap = document.getElementById('canvas-wrap');
        wrap.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        wrap.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true,
                                                  clientX: 600, clientY: 400}));
    }""", [name, base64.b64encode(data).decode(), mime])


def canvas_nodes(page: Any) -> dict[str, str]:
    return page.evaluate("Object.fromEntries(editor.canvas.nodes().filter(n => n.nf.kind === 'node')"
                         ".map(n => [n.nf.id, n.nf.entry.type]))")


def test_a_dropped_comfy_png_shows_its_nodes_on_the_canvas(editor: Any, shot: Shots) -> None:
    page = editor
    drop(page, "lora_multiple.png", (DATA / "lora_multiple.png").read_bytes(), "image/png")
    page.wait_for_function("() => editor.canvas.nodes().some(n => n.nf.id === 'generate_3')")
    assert canvas_nodes(page) == {"generate_3": "image.generate", "save_9": "image.save"}
    document = page.evaluate("editor.library.document()")
    generate = document["nodes"]["generate_3"]["inputs"]
    assert generate["loras"] == {"input": "loras"}  # every file a workflow names is a graph input
    assert document["inputs"]["loras"]["default"] == [
        {"model": "theovercomer8sContrastFix_sd15.safetensors", "weight": 1},
        {"model": "epiNoiseoffset_v2.safetensors", "weight": 1}]
    assert generate["seed"] == {"input": "seed"}
    assert document["inputs"]["seed"]["default"] == 513173432917412
    assert document["inputs"]["model"]["default"] == "v1-5-pruned-emaonly.ckpt"
    assert "Imported the ComfyUI workflow lora_multiple.png" in page.inner_text("#toasts")
    assert page.is_visible("#dirty-mark")
    shot(page, "ComfyUI PNG imported")


def test_a_dropped_comfy_ui_json_keeps_its_layout(editor: Any, shot: Shots) -> None:
    page = editor
    drop(page, "default_ui.json", (DATA / "default_ui.json").read_bytes(), "application/json")
    page.wait_for_function("() => editor.canvas.nodes().some(n => n.nf.id === 'generate_3')")
    positions = page.evaluate("Object.fromEntries(editor.canvas.nodes().filter(n => n.nf.kind === 'node')"
                              ".map(n => [n.nf.id, [Math.round(n.pos[0]), Math.round(n.pos[1])]]))")
    assert positions["generate_3"][0] < positions["save_9"][0]  # left to right as in ComfyUI
    assert page.evaluate("editor.library.document()")["inputs"]["prompt"]["default"].startswith(
        "beautiful scenery nature glass bottle")
    shot(page, "ComfyUI UI workflow imported")


def test_a_workflow_with_a_custom_node_is_refused_naming_it(editor: Any, shot: Shots) -> None:
    page = editor
    workflow = json.loads((DATA / "default_api.json").read_text())
    workflow["10"] = {"class_type": "UltimateSDUpscale", "inputs": {"image": ["8", 0]}}
    before = canvas_nodes(page)
    drop(page, "custom.json", json.dumps(workflow).encode(), "application/json")
    page.wait_for_function("() => document.getElementById('toasts').innerText.includes('Cannot import')")
    assert "10: UltimateSDUpscale: no nodeforge equivalent" in page.inner_text("#toasts")
    assert canvas_nodes(page) == before
    shot(page, "custom node refused")


def test_a_jpeg_is_refused_saying_why_and_a_comfy_webp_imports(editor: Any, shot: Shots) -> None:
    import io

    from PIL import Image

    page = editor
    before = canvas_nodes(page)
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    drop(page, "photo.jpg", jpeg.getvalue(), "image/jpeg")
    page.wait_for_function("() => document.getElementById('toasts').innerText.includes('JPEG')")
    assert canvas_nodes(page) == before
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + (DATA / "default_api.json").read_text()
    webp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(webp, format="WEBP", exif=exif)
    drop(page, "animated.webp", webp.getvalue(), "image/webp")
    page.wait_for_function("() => editor.canvas.nodes().some(n => n.nf.id === 'generate_3')")
    assert canvas_nodes(page) == {"generate_3": "image.generate", "save_9": "image.save"}
    shot(page, "ComfyUI WebP imported")
