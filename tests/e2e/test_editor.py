"""The editor in a real Chromium against a real ``nodeforge serve``: graphs built with mouse drags from socket to
socket and values typed into widgets, saved and found again after a reload; link rules on the canvas; text and
image runs with their outputs in the page; a failing node and validation issues shown on the nodes; a nodeforge
PNG dropped on the canvas; the token dialog."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server, Shots, start_server, stop_server, wait_ready_page

pytestmark = pytest.mark.e2e
RUN_TIMEOUT_MS = 90_000


# ------------------------------------------------------------------------------------------------------ helpers
def socket_at(page: Any, node: str, direction: str, port: str, nth: int = 0) -> dict[str, float]:
    return page.evaluate("([n, d, p, i]) => editor.canvas.socketPosition(n, d, p, i)", [node, direction, port, nth])


def drag(page: Any, start: dict[str, float], end: dict[str, float]) -> None:
    """A real mouse drag: press, move in steps, release."""
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move((start["x"] + end["x"]) / 2, (start["y"] + end["y"]) / 2, steps=6)
    page.mouse.move(end["x"], end["y"], steps=6)
    page.mouse.up()


def link(page: Any, source: str, output: str, target: str, port: str, nth: int = 0) -> None:
    drag(page, socket_at(page, source, "out", output), socket_at(page, target, "in", port, nth))


def add_node(page: Any, node_type: str, x: float, y: float) -> str:
    """Click the palette entry, then drag the new node by its title to (x, y) on the page."""
    page.click(f".palette-item[data-type='{node_type}']")
    node_id = page.evaluate("editor.canvas.nodes().at(-1).nf.id")
    drag(page, page.evaluate("id => editor.canvas.titlePosition(id)", node_id), {"x": x, "y": y})
    return node_id


def type_into_widget(page: Any, node: str, widget: str, text: str) -> None:
    """Click a widget on the canvas and type into the box it opens."""
    spot = page.evaluate("([n, w]) => editor.canvas.widgetPosition(n, w)", [node, widget])
    page.mouse.click(spot["x"], spot["y"])
    box = page.locator(".graphdialog .value")
    box.wait_for()
    box.fill(text)
    if box.evaluate("element => element.localName") == "textarea":
        page.click(".graphdialog button")
    else:
        box.press("Enter")
    page.locator(".graphdialog").wait_for(state="detached")


def document(page: Any) -> dict[str, Any]:
    return page.evaluate("editor.library.document()")


def import_json(page: Any, graph: dict[str, Any], name: str = "graph.json", discard: bool = False) -> None:
    """Import a graph file through the Import button's file input (answering the unsaved-changes question)."""
    page.set_input_files("#import-file", files=[{"name": name, "mimeType": "application/json",
                                                 "buffer": json.dumps(graph).encode()}])
    if discard:
        page.get_by_role("button", name="Discard changes").click()
    page.wait_for_function("nodes => Object.keys(nodes).every(id => editor.canvas.findNode(id))", arg=graph["nodes"])


def run_and_wait(page: Any, keyboard: bool = False) -> str:
    """Run with the button (or Ctrl+Enter) and wait until the run has finished and its outputs are shown."""
    if keyboard:
        page.keyboard.press("Control+Enter")
    else:
        page.click("#run-button")
    page.wait_for_function("() => ['succeeded', 'failed', 'cancelled'].includes("
                           "document.querySelector('#run-status').dataset.kind)", timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector("#outputs .output-head")
    return str(page.evaluate("document.querySelector('#run-status').dataset.kind"))


def api(server: Server, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{server.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if response.headers.get_content_type() == "application/json" else raw


# -------------------------------------------------------------------------------------------------------- tests
def test_build_with_the_mouse_save_reload_and_open_again(editor: Any, server: Server, shot: Shots) -> None:
    page = editor
    shot(page, "empty editor")
    value = add_node(page, "text.value", 420, 200)
    template = add_node(page, "text.template", 760, 200)
    type_into_widget(page, value, "value", "world")
    type_into_widget(page, template, "template", "Hello, {who}!")
    shot(page, "two nodes with typed values")

    link(page, value, "text", template, "who")
    page.click("#add-output-button")
    page.fill(".dialog input", "greeting")
    page.press(".dialog input", "Enter")
    drag(page, page.evaluate("editor.canvas.titlePosition('greeting')"), {"x": 1100, "y": 200})
    link(page, template, "text", "greeting", "value")
    shot(page, "linked with mouse drags")

    built = document(page)
    assert built["nodes"][value] == {"type": "text.value", "inputs": {"value": "world"}}
    assert built["nodes"][template]["inputs"] == {"template": "Hello, {who}!", "who": {"from": f"{value}.text"}}
    assert built["outputs"] == {"greeting": {"from": f"{template}.text"}}
    assert page.is_visible("#dirty-mark")

    page.click("#save-button")
    page.fill(".dialog input", "e2e-hello")
    page.press(".dialog input", "Enter")
    page.wait_for_function("() => document.querySelector('#graph-name').textContent === 'e2e-hello'")
    assert page.is_hidden("#dirty-mark")
    saved = api(server, "GET", "/api/graphs/e2e-hello")
    assert saved["nodes"][template]["inputs"]["who"] == {"from": f"{value}.text"}
    assert saved["ui"]["positions"][value] == built["ui"]["positions"][value]
    shot(page, "saved")

    page.reload()
    wait_ready_page(page)
    page.click("#open-button")
    page.click(".graph-row[data-name='e2e-hello']")
    page.wait_for_function("() => document.querySelector('#graph-name').textContent === 'e2e-hello'")
    reopened = document(page)
    assert reopened["nodes"] == saved["nodes"]
    assert reopened["outputs"] == built["outputs"]
    assert reopened["ui"]["positions"] == built["ui"]["positions"]
    shot(page, "found again after a reload")

    assert run_and_wait(page) == "succeeded"
    assert page.inner_text("[data-output='greeting'] .output-text") == "Hello, world!"
    shot(page, "ran")
    assert run_and_wait(page) == "succeeded"
    assert page.evaluate(f"editor.canvas.nodeState('{template}').status") == "cached"
    shot(page, "ran again from the cache")


def test_link_rules_on_the_canvas(editor: Any, shot: Shots) -> None:
    page = editor
    load = add_node(page, "image.load", 380, 180)
    text = add_node(page, "text.value", 760, 150)
    number = add_node(page, "int.value", 380, 560)
    real = add_node(page, "float.value", 760, 560)
    shot(page, "nodes")

    link(page, load, "image", text, "value")
    refusal = page.locator(".toast.floating")
    refusal.wait_for()
    message = refusal.inner_text()
    assert "image" in message and "takes text" in message, message
    shot(page, "image to text refused with its reason")
    assert document(page)["nodes"][text]["inputs"].get("value") != {"from": f"{load}.image"}

    link(page, number, "value", real, "value")
    assert document(page)["nodes"][real]["inputs"]["value"] == {"from": f"{number}.value"}
    shot(page, "int feeds float")

    grid = add_node(page, "image.grid", 1120, 300)
    second = add_node(page, "image.load", 380, 420)
    link(page, load, "image", grid, "images", 0)
    page.wait_for_function(f"() => editor.canvas.findNode('{grid}').inputs.filter(s => s.nf_port === 'images')"
                           ".length === 2")
    link(page, second, "image", grid, "images", 1)
    page.wait_for_function(f"() => editor.canvas.findNode('{grid}').inputs.filter(s => s.nf_port === 'images')"
                           ".length === 3")
    assert document(page)["nodes"][grid]["inputs"]["images"] == [{"from": f"{load}.image"},
                                                                 {"from": f"{second}.image"}]
    shot(page, "a list input takes several links")


def test_run_a_text_graph_with_streamed_llm_text(editor: Any, shot: Shots) -> None:
    page = editor
    import_json(page, {
        "inputs": {"subject": {"type": "text", "default": "a red fox"}},
        "nodes": {
            "prompt": {"type": "text.template", "inputs": {"template": "Tell me about {subject}.",
                                                           "subject": {"input": "subject"}}},
            "llm": {"type": "llm.generate", "inputs": {"prompt": {"from": "prompt.text"}, "model": "tiny/llm",
                                                       "max_new_tokens": 16, "seed": 3}}},
        "outputs": {"story": {"from": "llm.text"}, "prompt": {"from": "prompt.text"}}}, "story.json")
    page.fill("#run-inputs [data-name='subject'] textarea", "an owl")
    shot(page, "imported with its input")
    page.click("#graph-canvas", position={"x": 600, "y": 700})
    assert run_and_wait(page, keyboard=True) == "succeeded"
    assert page.inner_text("[data-output='prompt'] .output-text") == "Tell me about an owl."
    story = page.inner_text("[data-output='story'] .output-text")
    assert story.strip()
    assert page.evaluate("editor.canvas.nodeState('llm').text") == story
    assert page.evaluate("editor.canvas.nodeState('llm').status") == "succeeded"
    inside = page.evaluate("(() => { const n = editor.canvas.findNode('llm'); return n.nf.textArea < n.size[1]; })()")
    assert inside, "the streamed text has room inside its node"
    shot(page, "text output and the streamed text on its node")


def test_run_an_image_graph_preview_history_and_reopen(editor: Any, shot: Shots) -> None:
    page = editor
    graph = {"nodes": {
        "picture": {"type": "image.generate", "inputs": {"prompt": "a lighthouse", "model": "tiny/sd", "width": 64,
                                                        "height": 64, "steps": 2, "seed": 5}}},
        "outputs": {"picture": {"from": "picture.image"}}}
    import_json(page, graph, "picture.json")
    assert run_and_wait(page) == "succeeded"
    preview = page.locator("[data-output='picture'] img.output-image")
    preview.wait_for()
    page.wait_for_function("() => document.querySelector(\"[data-output='picture'] img\").complete")
    assert preview.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [64, 64]
    shot(page, "image preview")
    preview.click()
    page.locator(".lightbox img").wait_for()
    assert page.evaluate("document.querySelector('.lightbox img').naturalWidth") == 64
    assert page.get_attribute(".lightbox a", "download")
    shot(page, "enlarged")
    page.keyboard.press("Escape")

    page.click("[data-tab='history']")
    row = page.locator(".history-row").first
    row.wait_for()
    shot(page, "history")
    row.get_by_text("Open graph").click()
    page.get_by_role("button", name="Discard changes").click()
    page.wait_for_function("() => editor.canvas.nodeState('picture')?.status === 'succeeded'")
    assert document(page)["nodes"]["picture"]["inputs"]["prompt"] == "a lighthouse"
    page.wait_for_selector("[data-output='picture'] img.output-image")
    shot(page, "reopened from history")


def test_a_failing_node_shows_its_error_and_issues_show_on_nodes(editor: Any, shot: Shots) -> None:
    page = editor
    import_json(page, {"nodes": {
        "bad": {"type": "llm.generate", "inputs": {"prompt": "   ", "model": "tiny/llm", "max_new_tokens": 4}},
        "fine": {"type": "text.value", "inputs": {"value": "still here"}}}}, "failing.json")
    assert run_and_wait(page) == "failed"
    state = page.evaluate("editor.canvas.nodeState('bad')")
    assert state["status"] == "failed"
    assert "the prompt is empty" in state["error"]
    assert page.evaluate("editor.canvas.nodeState('fine').status") == "succeeded"
    shot(page, "the failed node carries its error")

    import_json(page, {"nodes": {
        "img": {"type": "image.generate", "inputs": {"prompt": "x", "model": "tiny/sd", "width": 65}}}},
        "bad.json", discard=True)
    page.click("#run-button")
    page.wait_for_selector("#issues li")
    issues = page.evaluate("editor.canvas.issuesOf('img')")
    assert any(issue["input"] == "width" for issue in issues), issues
    assert "width" in page.inner_text("#issues")
    shot(page, "validation issues on the node")


def test_dropping_a_nodeforge_png_restores_its_graph(editor: Any, server: Server, shot: Shots) -> None:
    graph = {"nodes": {
        "load": {"type": "image.load", "inputs": {"path": str(server.data_dir / "inputs" / "dot.png")}},
        "small": {"type": "image.resize", "inputs": {"image": {"from": "load.image"}, "width": 24, "height": 16}}},
        "outputs": {"thumb": {"from": "small.image"}}}
    queued = api(server, "POST", "/api/runs", {"graph": graph})
    events = urllib.request.urlopen(f"{server.url}/api/runs/{queued['id']}/events", timeout=60).read()
    assert b'"status": "succeeded"' in events or b'"status":"succeeded"' in events
    view = api(server, "GET", f"/api/runs/{queued['id']}")
    png = api(server, "GET", view["outputs"]["thumb"]["url"])
    assert png[:4] == b"\x89PNG"

    page = editor
    page.evaluate("""([data]) => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'thumb.png', {type: 'image/png'}));
        const wrap = document.getElementById('canvas-wrap');
        wrap.dispatchEvent(new DragEvent('dragover', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        wrap.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true,
                                                  clientX: 700, clientY: 400}));
    }""", [base64.b64encode(png).decode()])
    page.wait_for_function("() => editor.canvas.nodes().length === 3")
    restored = document(page)
    assert restored["nodes"]["load"]["inputs"] == graph["nodes"]["load"]["inputs"]
    assert restored["nodes"]["small"]["inputs"]["image"] == {"from": "load.image"}
    assert restored["outputs"] == {"thumb": {"from": "small.image"}}
    assert page.is_visible("#dirty-mark")
    shot(page, "graph restored from the PNG")


def test_the_token_is_asked_once_per_tab(open_editor: Callable[..., Any], tmp_path: Path, shot: Shots) -> None:
    guarded = start_server(tmp_path / "data", tmp_path / "serve.log", {"NODEFORGE_TOKEN": "s3cret"})
    try:
        page = open_editor(guarded.url, wait_ready=False)
        page.locator(".dialog input[type='password']").wait_for()
        shot(page, "token asked")
        page.fill(".dialog input[type='password']", "s3cret")
        page.press(".dialog input[type='password']", "Enter")
        wait_ready_page(page)
        assert page.evaluate("sessionStorage.getItem('nodeforge.token')") == "s3cret"
        page.reload()
        wait_ready_page(page)
        assert page.locator(".dialog").count() == 0
        assert page.locator(".palette-item").count() > 10
        shot(page, "ready without asking again")
        page.click("#open-button")
        page.click(".graph-row[data-name='hello']")
        page.wait_for_function("() => document.querySelector('#graph-name').textContent === 'hello'")
        assert run_and_wait(page) == "succeeded"
        assert page.inner_text("[data-output='message'] .output-text") == "Hello, Ada! See you soon."
        shot(page, "ran with the token, events included")
    finally:
        stop_server(guarded)


def pick_from_menu(page: Any, node: str, widget: str, entry: str) -> None:
    spot = page.evaluate("([n, w]) => editor.canvas.widgetPosition(n, w)", [node, widget])
    page.mouse.click(spot["x"], spot["y"])
    page.locator(".litecontextmenu .litemenu-entry", has_text=entry).first.click()


def test_widgets_follow_each_inputs_schema(editor: Any, shot: Shots) -> None:
    page = editor
    page.fill("#palette-search", "denoising steps")
    assert page.locator(".palette-item").count() >= 1
    page.fill("#palette-search", "diffusion")
    types = page.eval_on_selector_all(".palette-item", "items => items.map(item => item.dataset.type)")
    assert "image.generate" in types and "llm.generate" not in types
    shot(page, "palette searched by description")
    page.fill("#palette-search", "")
    painter = add_node(page, "image.generate", 760, 160)

    spot = page.evaluate("([n, w]) => editor.canvas.widgetPosition(n, w)", [painter, "model"])
    page.mouse.click(spot["x"], spot["y"])
    entries = page.eval_on_selector_all(".litecontextmenu .litemenu-entry", "items => items.map(i => i.textContent)")
    assert "tiny/sd" in entries and "sd-turbo" in entries and "tiny/llm" not in entries
    shot(page, "model picker lists image models")
    page.locator(".litecontextmenu .litemenu-entry", has_text="tiny/sd").first.click()
    pick_from_menu(page, painter, "model", "other…")
    page.fill(".dialog input", "my-org/my-model")
    page.press(".dialog input", "Enter")
    pick_from_menu(page, painter, "scheduler", "euler_a")
    type_into_widget(page, painter, "steps", "3")
    type_into_widget(page, painter, "guidance_scale", "1.5")

    toggle = page.evaluate("([n, w]) => editor.canvas.widgetPosition(n, w)", [painter, "seed:random"])
    page.mouse.click(toggle["x"], toggle["y"])
    assert document(page)["nodes"][painter]["inputs"]["seed"] == -1
    dice = page.evaluate("([n, w]) => editor.canvas.widgetPosition(n, w)", [painter, "seed:new"])
    page.mouse.click(dice["x"], dice["y"])
    seed = document(page)["nodes"][painter]["inputs"]["seed"]
    assert isinstance(seed, int) and seed >= 0

    loras = page.evaluate("([n, w]) => editor.canvas.widgetPosition(n, w)", [painter, "loras"])
    page.mouse.click(loras["x"], loras["y"])
    page.get_by_role("button", name="+ Add a LoRA").click()
    page.fill(".lora-model", "styles/ink.safetensors")
    page.fill(".lora-weight", "0.8")
    shot(page, "LoRA list")
    page.get_by_role("button", name="OK").click()

    page.click("#add-input-button")
    page.fill(".dialog input", "subject")
    page.select_option(".dialog select", "text")
    page.press(".dialog input", "Enter")
    drag(page, page.evaluate("editor.canvas.titlePosition('subject')"), {"x": 420, "y": 160})
    drag(page, socket_at(page, "subject", "out", "value"), socket_at(page, painter, "in", "prompt"))
    page.wait_for_selector("#run-inputs [data-name='subject']", state="attached")

    title = page.evaluate("id => editor.canvas.titlePosition(id)", painter)
    page.mouse.dblclick(title["x"], title["y"])
    page.fill(".dialog input", "painter")
    page.press(".dialog input", "Enter")
    shot(page, "widgets set")

    built = document(page)
    assert painter not in built["nodes"]
    assert built["inputs"] == {"subject": {"type": "text", "default": ""}}
    inputs = built["nodes"]["painter"]["inputs"]
    assert inputs["prompt"] == {"input": "subject"}
    assert inputs["model"] == "my-org/my-model"
    assert inputs["scheduler"] == "euler_a"
    assert inputs["steps"] == 3 and inputs["guidance_scale"] == 1.5
    assert inputs["loras"] == [{"model": "styles/ink.safetensors", "weight": 0.8}]
    assert "width" not in inputs


def test_the_page_links_by_the_engines_type_rules(editor: Any) -> None:
    from typing import get_args

    from nodeforge.engine.types import GraphInputType, is_assignable

    graph_input_types = get_args(GraphInputType)
    types = [*graph_input_types, *(f"list[{item}]" for item in graph_input_types)]
    verdicts = editor.evaluate("""async (types) => {
        const { isAssignable } = await import('/static/js/types.js');
        return types.map(source => types.map(target => isAssignable(source, target)));
    }""", types)
    expected = [[is_assignable(source, target) for target in types] for source in types]
    assert verdicts == expected
