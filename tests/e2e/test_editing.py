"""Editing habits a ComfyUI user brings, in a real Chromium: copy and paste, Clone and Alt+drag make nodes with
ids and values of their own that save; the node menu offers each entry once, and only entries that work."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Server, Shots
from tests.e2e.test_editor import api, document, drag, import_json, run_and_wait

pytestmark = pytest.mark.e2e

GRAPH = {"name": "copies", "nodes": {
    "text": {"type": "text.value", "inputs": {"value": "world"}},
    "greet": {"type": "text.template", "inputs": {"template": "Hello, {who}!", "who": {"from": "text.text"}}}},
    "outputs": {"greeting": {"from": "greet.text"}}, "ui": {"positions": {"text": [100, 150], "greet": [500, 150]}}}


def title_of(page: Any, node: str) -> dict[str, float]:
    return page.evaluate("id => editor.canvas.titlePosition(id)", node)


def node_ids(page: Any) -> list[str]:
    return sorted(document(page)["nodes"])


def test_copy_paste_clone_and_alt_drag_make_nodes_that_save(editor: Any, server: Server, shot: Shots) -> None:
    page = editor
    import_json(page, GRAPH)
    spot = title_of(page, "text")
    page.mouse.click(spot["x"], spot["y"])
    page.keyboard.press("Control+c")
    page.mouse.move(spot["x"] + 40, spot["y"] + 260)
    page.keyboard.press("Control+v")
    page.wait_for_function("() => editor.canvas.findNode('text_2') !== null")
    shot(page, "pasted")

    page.mouse.click(spot["x"], spot["y"], button="right")
    entries = page.locator(".litecontextmenu .litemenu-entry").all_inner_texts()
    shot(page, "node menu")
    labels = [entry.strip() for entry in entries if entry.strip()]
    assert len(labels) == len(set(labels)), labels
    assert "Clone" in labels and "Rename…" in labels
    assert not [label for label in labels if "Subgraph" in label or label in ("Mode", "Properties")], labels
    page.locator(".litecontextmenu .litemenu-entry", has_text="Clone").click()
    page.wait_for_function("() => editor.canvas.findNode('text_3') !== null")

    page.keyboard.down("Alt")
    drag(page, title_of(page, "greet"), {"x": title_of(page, "greet")["x"] + 30, "y": spot["y"] + 420})
    page.keyboard.up("Alt")
    page.wait_for_function("() => editor.canvas.findNode('greet_2') !== null")
    shot(page, "cloned and alt-dragged")

    built = document(page)
    assert node_ids(page) == ["greet", "greet_2", "text", "text_2", "text_3"]
    for copy in ("text_2", "text_3"):
        assert built["nodes"][copy] == {"type": "text.value", "inputs": {"value": "world"}}
    assert built["nodes"]["greet_2"]["inputs"] == {"template": "Hello, {who}!", "who": ""}  # unlinked, inputs kept
    page.click("#save-button")  # the imported graph has a name: it saves under it (a 422 before copies had ids)
    page.wait_for_function("() => !editor.library.dirty()")
    saved = api(server, "GET", "/api/graphs/copies")
    assert sorted(saved["nodes"]) == ["greet", "greet_2", "text", "text_2", "text_3"]
    shot(page, "saved")


def test_undo_redo_the_unsaved_mark_and_a_draft_after_reload(editor: Any, shot: Shots) -> None:
    page = editor
    import_json(page, GRAPH, discard=page.evaluate("editor.library.dirty()"))
    page.click("#save-button")
    page.wait_for_function("() => !editor.library.dirty()")
    start = title_of(page, "text")
    drag(page, start, {"x": start["x"] + 120, "y": start["y"] + 200})
    assert page.is_visible("#dirty-mark"), "moving a node is an unsaved change"
    moved = document(page)["ui"]["positions"]["text"]
    page.mouse.click(title_of(page, "text")["x"], title_of(page, "text")["y"])
    page.keyboard.press("Delete")
    page.wait_for_function("() => editor.canvas.findNode('text') === null")
    shot(page, "deleted")
    page.keyboard.press("Control+z")
    page.wait_for_function("() => editor.canvas.findNode('text') !== null")
    restored = document(page)
    assert restored["nodes"]["text"] == GRAPH["nodes"]["text"]
    assert restored["nodes"]["greet"]["inputs"]["who"] == {"from": "text.text"}  # its link came back too
    assert restored["ui"]["positions"]["text"] == moved
    shot(page, "undone")
    page.keyboard.press("Control+Shift+z")
    page.wait_for_function("() => editor.canvas.findNode('text') === null")
    page.keyboard.press("Control+z")
    page.wait_for_function("() => editor.canvas.findNode('text') !== null")

    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    page.get_by_role("button", name="Restore").click()
    page.wait_for_function("() => editor.canvas.findNode('greet') !== null")
    assert document(page)["ui"]["positions"]["text"] == moved
    assert page.is_visible("#dirty-mark")
    assert page.evaluate("document.querySelector('#graph-name').textContent") == "copies"
    shot(page, "draft restored after reload")


def choose_file(page: Any, node: str, path: str) -> None:
    """Click a node's "choose file…" button and pick ``path`` in the file chooser it opens (clicked again if the
    chooser did not open: on a loaded machine the first click can land before the canvas has settled)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        spot = page.evaluate("([n, w]) => editor.canvas.widgetPosition(n, w)", [node, "path:upload"])
        try:
            with page.expect_file_chooser(timeout=10_000) as chooser:
                page.mouse.click(spot["x"], spot["y"])
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            continue
        chooser.value.set_files(path)
        return


def test_the_choose_file_button_uploads_a_picture_for_image_load(editor: Any, server: Server, shot: Shots,
                                                                   tmp_path: Any) -> None:
    from PIL import Image

    picture = tmp_path / "mine.png"
    Image.new("RGB", (40, 24), "#3080c0").save(picture)
    graph = {"name": "mine", "nodes": {"load": {"type": "image.load", "inputs": {}}},
             "outputs": {"picture": {"from": "load.image"}}}
    page = editor
    import_json(page, graph, discard=page.evaluate("editor.library.dirty()"))
    choose_file(page, "load", str(picture))
    page.wait_for_function("() => /^[0-9a-f]{16,}/.test(editor.library.document().nodes.load.inputs.path ?? '')")
    artifact = document(page)["nodes"]["load"]["inputs"]["path"]
    shot(page, "uploaded into image.load")
    assert api(server, "GET", f"/api/artifacts/{artifact}")[:4] == b"\x89PNG"
    status = run_and_wait(page)
    assert status == "succeeded"
    import io

    view = api(server, "GET", f"/api/runs/{page.evaluate('editor.runs.active.id')}")
    assert Image.open(io.BytesIO(api(server, "GET", view["outputs"]["picture"]["url"]))).size == (40, 24)


def test_search_at_the_pointer_and_on_a_dropped_link(editor: Any, shot: Shots) -> None:
    page = editor
    import_json(page, GRAPH, discard=page.evaluate("editor.library.dirty()"))
    page.mouse.dblclick(900, 700)
    page.locator(".quick-search input").fill("upscale")
    shot(page, "search at the pointer")
    page.keyboard.press("Enter")
    page.wait_for_function("() => editor.canvas.findNode('upscale') !== null")
    at = page.evaluate("editor.canvas.findNode('upscale').pos")
    assert at == page.evaluate("() => editor.canvas.toGraphPoint(900, 700)")

    out = page.evaluate("([n, p]) => editor.canvas.socketPosition(n, 'out', p, 0)", ["text", "text"])
    drag(page, out, {"x": out["x"] + 150, "y": out["y"] + 380})
    page.locator(".quick-search").wait_for()
    def offered(query: str) -> list[str]:
        page.locator(".quick-search input").fill(query)
        return page.locator(".quick-item").evaluate_all("items => items.map(i => i.dataset.type)")

    assert offered("join") == ["text.join"]
    assert "video.combine" not in offered("combine")  # it has no input that takes text (video.load does)
    page.locator(".quick-search input").fill("llm generate")
    shot(page, "search on a dropped link")
    page.keyboard.press("Enter")
    page.wait_for_function("() => editor.canvas.findNode('generate') !== null")
    assert document(page)["nodes"]["generate"]["inputs"]["prompt"] == {"from": "text.text"}


def test_bypass_from_the_menu_and_ctrl_b_runs_without_the_node(editor: Any, server: Server, shot: Shots) -> None:
    graph = {"name": "bypass", "nodes": {
        "text": {"type": "text.value", "inputs": {"value": "fox"}},
        "shout": {"type": "text.template", "inputs": {"template": "{t}!!!", "t": {"from": "text.text"}}},
        "wrap": {"type": "text.join", "inputs": {"texts": [{"from": "shout.text"}, "tail"], "separator": " "}}},
        "outputs": {"out": {"from": "wrap.text"}}}
    page = editor
    import_json(page, graph, discard=page.evaluate("editor.library.dirty()"))
    spot = title_of(page, "shout")
    page.mouse.click(spot["x"], spot["y"], button="right")
    page.locator(".litecontextmenu .litemenu-entry", has_text="Bypass").click()
    assert document(page)["nodes"]["shout"]["bypass"] is True
    shot(page, "bypassed")
    assert run_and_wait(page) == "succeeded"
    run = api(server, "GET", f"/api/runs/{page.evaluate('editor.runs.active.id')}")
    assert run["outputs"]["out"] == "{t}!!! tail"  # the template passes its first text input (the template) on
    assert run["nodes"]["shout"]["status"] == "skipped" and run["nodes"]["shout"]["error"] == "bypassed"
    page.mouse.click(spot["x"], spot["y"])
    page.keyboard.press("Control+b")
    assert "bypass" not in document(page)["nodes"]["shout"]
    assert run_and_wait(page) == "succeeded"
    run = api(server, "GET", f"/api/runs/{page.evaluate('editor.runs.active.id')}")
    assert run["outputs"]["out"] == "fox!!! tail"


def test_a_group_moves_its_nodes_and_is_saved_in_ui(editor: Any, server: Server, shot: Shots) -> None:
    page = editor
    import_json(page, GRAPH, discard=page.evaluate("editor.library.dirty()"))
    page.evaluate("() => { for (const id of ['text', 'greet']) editor.canvas.canvas.selectNode("
                  "editor.canvas.findNode(id), true); }")
    page.keyboard.press("Control+g")
    page.fill(".dialog input", "greeting part")
    page.press(".dialog input", "Enter")
    page.wait_for_function("() => editor.canvas.graph.groups.length === 1")
    page.evaluate("() => { editor.canvas.canvas.ds.offset[1] += 200; editor.canvas.canvas.setDirty(true, true); }")
    before = document(page)["ui"]["positions"]
    group = document(page)["ui"]["groups"][0]
    assert group["title"] == "greeting part"
    x, y, _, _ = group["bounding"]
    grab = page.evaluate("([gx, gy]) => editor.canvas.graphToPage(gx + 60, gy + 12)", [x, y])
    drag(page, grab, {"x": grab["x"] + 100, "y": grab["y"] + 150})
    shot(page, "group moved with its nodes")
    after = document(page)["ui"]["positions"]
    scale = page.evaluate("editor.canvas.canvas.ds.scale")
    for node in ("text", "greet"):
        assert [round((b - a) / scale) for a, b in zip(before[node], after[node], strict=True)] == [100, 150]
    assert document(page)["ui"]["groups"][0]["bounding"][0] == x + round(100 / scale)
    page.click("#save-button")
    page.wait_for_function("() => !editor.library.dirty()")
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    page.click("#open-button")
    page.click(".graph-row[data-name='copies']")
    page.wait_for_function("() => editor.canvas.graph.groups.length === 1")
    assert page.evaluate("editor.canvas.graph.groups[0].title") == "greeting part"


def test_the_last_output_picture_is_drawn_on_the_node_that_made_it(editor: Any, server: Server, shot: Shots) -> None:
    graph = {"name": "preview", "nodes": {
        "load": {"type": "image.load", "inputs": {"path": "dot.png"}},
        "big": {"type": "image.resize", "inputs": {"image": {"from": "load.image"}, "width": 96, "height": 64}}},
        "outputs": {"picture": {"from": "big.image"}}}
    page = editor
    import_json(page, graph, discard=page.evaluate("editor.library.dirty()"))
    height = page.evaluate("editor.canvas.findNode('big').size[1]")
    assert run_and_wait(page) == "succeeded"
    page.wait_for_function("() => editor.canvas.findNode('big').nf.preview?.naturalWidth === 96")
    assert page.evaluate("editor.canvas.findNode('big').size[1]") > height  # the node grew to show it
    assert page.evaluate("editor.canvas.findNode('load').nf.preview ?? null") is None
    shot(page, "preview on the node")


def test_the_question_mark_lists_the_shortcuts(editor: Any, shot: Shots) -> None:
    page = editor
    page.mouse.click(700, 500)
    page.keyboard.press("?")
    dialog = page.locator(".dialog", has_text="Shortcuts")
    dialog.wait_for()
    text = dialog.inner_text()
    shot(page, "shortcuts")
    for keys in ("Ctrl+Z", "Ctrl+B", "Ctrl+G", "double-click the canvas"):
        assert keys in text
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")


OVERLAPPING_CONTROLS = """() => {
  const boxes = [...document.querySelectorAll('header button, header .tag, #graph-name, #run-status, [data-tab]')]
    .filter((e) => e.offsetParent !== null).map((e) => [e.id || e.textContent.trim(), e.getBoundingClientRect()]);
  const pairs = [];
  for (let i = 0; i < boxes.length; i += 1) for (let j = i + 1; j < boxes.length; j += 1) {
    const [a, p] = boxes[i];
    const [b, q] = boxes[j];
    const apart = p.right - 1 <= q.left || q.right - 1 <= p.left || p.bottom - 1 <= q.top || q.bottom - 1 <= p.top;
    if (!apart) pairs.push([a, b]);
  }
  const outside = boxes.filter(([, r]) => r.right > innerWidth || r.bottom > innerHeight).map(([n]) => n);
  const canvas = document.getElementById('graph-canvas').getBoundingClientRect();
  return { pairs, outside, canvas: [canvas.width, canvas.height] };
}"""


@pytest.mark.parametrize("size", [(1280, 800), (2560, 1440)])
def test_the_editor_fits_small_and_large_screens(browser: Any, server: Server, shot: Shots,
                                                  size: tuple[int, int]) -> None:
    from tests.e2e.conftest import wait_ready_page

    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    try:
        page = context.new_page()
        page.goto(server.url)
        wait_ready_page(page)
        page.click("#open-button")
        page.click(".graph-row[data-name='quickstart']")
        page.wait_for_function("() => document.querySelector('#graph-name').textContent === 'quickstart'")
        found = page.evaluate(OVERLAPPING_CONTROLS)
        shot(page, f"quickstart at {size[0]}x{size[1]}")
        assert found["pairs"] == [] and found["outside"] == [], found
        assert found["canvas"][0] > size[0] / 3 and found["canvas"][1] > size[1] / 2, found
    finally:
        context.close()


def test_the_queue_shows_waiting_runs_and_cancels_one(editor: Any, server: Server, shot: Shots) -> None:
    slow = {"name": "slow", "nodes": {"llm": {"type": "llm.generate", "inputs": {
        "prompt": "x", "model": "tiny/llm", "max_new_tokens": 1000, "temperature": 1.0, "seed": 5}}}}
    first = api(server, "POST", "/api/runs", {"graph": slow})["id"]
    second = api(server, "POST", "/api/runs", {"graph": {**slow, "name": "slow-too"}})["id"]
    page = editor
    page.click("[data-tab='history']")
    page.click("#history-refresh")
    row = page.locator(f".history-row[data-run='{second}']")
    row.wait_for()
    assert "Queue:" in page.inner_text(".history-queue")
    shot(page, "queue")
    row.get_by_role("button", name="Cancel").click()
    page.wait_for_function("id => document.querySelector(`.history-row[data-run='${id}'] .pill`)?.textContent "
                           "=== 'cancelled'", arg=second)
    assert api(server, "GET", f"/api/runs/{second}")["status"] == "cancelled"
    api(server, "POST", f"/api/runs/{first}/cancel")


def test_a_painted_mask_reaches_the_server_as_the_pictures_alpha(editor: Any, server: Server, shot: Shots,
                                                                 tmp_path: Any) -> None:
    import io

    from PIL import Image

    picture = tmp_path / "scene.png"
    Image.new("RGB", (64, 64), "#40a040").save(picture)
    page = editor
    import_json(page, {"name": "masked", "nodes": {"load": {"type": "image.load", "inputs": {}}}},
                discard=page.evaluate("editor.library.dirty()"))
    choose_file(page, "load", str(picture))
    page.wait_for_function("() => /^[0-9a-f]{32}$/.test(editor.library.document().nodes.load.inputs.path ?? '')")
    uploaded = document(page)["nodes"]["load"]["inputs"]["path"]
    spot = page.evaluate("([n, w]) => editor.canvas.widgetPosition(n, w)", ["load", "path:mask"])
    page.mouse.click(spot["x"], spot["y"])
    view = page.locator(".mask-view")
    view.wait_for()
    box = view.bounding_box()
    page.locator(".mask-tools input[name='size']").fill("8")
    drag(page, {"x": box["x"] + box["width"] * 0.1, "y": box["y"] + box["height"] * 0.5},
         {"x": box["x"] + box["width"] * 0.5, "y": box["y"] + box["height"] * 0.5})
    shot(page, "mask painted")
    page.get_by_role("button", name="Save mask").click()
    page.wait_for_function("id => (editor.library.document().nodes.load.inputs.path ?? id) !== id", arg=uploaded)
    masked = document(page)["nodes"]["load"]["inputs"]["path"]
    alpha = Image.open(io.BytesIO(api(server, "GET", f"/api/artifacts/{masked}"))).convert("RGBA").getchannel("A")
    assert alpha.getpixel((20, 32)) == 0  # painted: transparent
    assert alpha.getpixel((50, 10)) == 255 and alpha.getpixel((60, 32)) == 255  # not painted: opaque
    assert run_and_wait(page) == "succeeded"
