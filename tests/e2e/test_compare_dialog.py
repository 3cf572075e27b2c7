"""The Compare… dialog in a real Chromium: graph inputs ticked as axes with typed values, the cells counted as
they are typed, the sweep submitted, and its comparison page opened in a new tab when the run finishes; a zip of
unequal lengths cannot be submitted; a sweep the server refuses is explained in the dialog; behind a token the
page is fetched with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server, Shots, start_server, stop_server, wait_ready_page
from tests.e2e.test_editor import RUN_TIMEOUT_MS, import_json

pytestmark = pytest.mark.e2e

# text.template takes text only (no node turns an int into text), so the int axis has an output of its own.
GRAPH = {"name": "letters-and-numbers",
         "inputs": {"a": {"type": "text", "default": "q"}, "b": {"type": "int", "default": 0}},
         "nodes": {"word": {"type": "text.template", "inputs": {"template": "{a}!", "a": {"input": "a"}}},
                   "number": {"type": "int.value", "inputs": {"value": {"input": "b"}}}},
         "outputs": {"word": {"from": "word.text"}, "number": {"from": "number.value"}},
         "ui": {"positions": {"word": [120, 140], "number": [120, 360]}}}


def open_dialog(page: Any, values: dict[str, str]) -> Any:
    """Import the graph, open Compare… and tick each named input with its values typed."""
    import_json(page, GRAPH)
    page.click("#compare-button")
    dialog = page.locator(".dialog")
    for name, text in values.items():
        dialog.locator(f"input[name='axis-{name}']").check()
        dialog.locator(f"input[name='values-{name}']").fill(text)
    return dialog


def test_a_sweep_from_the_dialog_opens_its_comparison_page(editor: Any, shot: Shots) -> None:
    page = editor
    dialog = open_dialog(page, {"a": "x,y", "b": "1..3"})
    assert dialog.locator(".compare-count").inner_text() == "6 cells"
    assert dialog.locator(".compare-axis[data-name='b'] .compare-note").inner_text() == "3 values"
    shot(page, "compare dialog with six cells")

    with page.context.expect_page(timeout=RUN_TIMEOUT_MS) as opened:
        dialog.get_by_role("button", name="Submit").click()
    comparison = opened.value
    comparison.wait_for_load_state()
    assert page.locator(".dialog").count() == 0
    assert page.evaluate("document.querySelector('#run-status').dataset.kind") == "succeeded"
    rows = comparison.eval_on_selector_all(
        "#cells tbody tr", "rows => rows.map(row => [...row.cells].slice(0, 4).map(cell => cell.textContent.trim()))")
    assert rows == [[a, str(b), f"{a}!", str(b)] for a in ("x", "y") for b in (1, 2, 3)]
    assert comparison.url.endswith("/compare")
    shot(comparison, "comparison page of the six cells")

    with page.context.expect_page() as again:  # the Outputs panel of a swept run links its page too
        page.locator("#outputs .output-head").get_by_role("button", name="Compare page").click()
    again.value.wait_for_load_state()
    assert again.value.locator("#cells tbody tr").count() == 6


def test_a_zip_of_unequal_lengths_cannot_be_submitted(editor: Any, shot: Shots) -> None:
    page = editor
    dialog = open_dialog(page, {"a": "x,y", "b": "1..3"})
    dialog.get_by_label("pair them (zip)").check()
    assert "a has 2, b has 3" in dialog.locator(".compare-count").inner_text()
    assert dialog.get_by_role("button", name="Submit").is_disabled()
    shot(page, "zip of unequal lengths refused")
    dialog.locator("input[name='values-b']").fill("1, 2")
    assert dialog.locator(".compare-count").inner_text() == "2 cells"
    assert dialog.get_by_role("button", name="Submit").is_enabled()
    dialog.locator("input[name='values-b']").fill("1, two")
    assert "'two' is not an int" in dialog.locator(".compare-count").inner_text()
    assert dialog.get_by_role("button", name="Submit").is_disabled()


def test_a_sweep_the_server_refuses_is_explained_in_the_dialog(editor: Any, server: Server, shot: Shots) -> None:
    page = editor
    dialog = open_dialog(page, {"a": "x,y", "b": "1..3000"})  # 6,000 cells: more than one sweep may run
    assert dialog.locator(".compare-count").inner_text() == "6000 cells"
    dialog.get_by_role("button", name="Submit").click()
    refusal = dialog.locator(".compare-issues")
    refusal.wait_for()
    assert "Not run" in refusal.inner_text() and "at most 4096" in refusal.inner_text()
    assert refusal.locator("li[data-input='sweep']").count() >= 1
    assert page.locator(".dialog").count() == 1
    assert page.evaluate("document.querySelector('#run-status').dataset.kind") == "failed"
    shot(page, "server refusal in the dialog")


def test_behind_a_token_the_comparison_page_is_fetched_with_it(open_editor: Callable[..., Any], tmp_path: Path,
                                                                shot: Shots) -> None:
    guarded = start_server(tmp_path / "data", tmp_path / "serve.log", {"NODEFORGE_TOKEN": "s3cret"})
    try:
        page = open_editor(guarded.url, wait_ready=False)
        page.fill(".dialog input[type='password']", "s3cret")
        page.press(".dialog input[type='password']", "Enter")
        wait_ready_page(page)
        dialog = open_dialog(page, {"a": "x,y"})
        assert dialog.locator(".compare-count").inner_text() == "2 cells"
        with page.context.expect_page(timeout=RUN_TIMEOUT_MS) as opened:
            dialog.get_by_role("button", name="Submit").click()
        comparison = opened.value
        comparison.wait_for_load_state()
        assert comparison.url.startswith("blob:")
        assert comparison.locator("#cells tbody tr").count() == 2
        shot(comparison, "comparison page behind a token")
    finally:
        stop_server(guarded)
