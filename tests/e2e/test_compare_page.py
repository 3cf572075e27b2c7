"""A sweep's comparison page in a real Chromium: as someone opens it from the run's folder (a file:// page, its
pictures and sounds loaded from the files beside it, the swept values that differ tinted, and a numeric column
sorted by number when its header is clicked), and as the server serves it when the swept values are hostile."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.cli.compare_page import write_compare
from nodeforge.engine.media_io import write_output
from nodeforge.engine.values import Audio, Image
from tests.e2e.conftest import Server, Shots

pytestmark = pytest.mark.e2e

# Sorted as numbers: 0.125, 0.31, 9.5, 10.0 (cells 1, 0, 3, 2). As plain text 10.0 would come before 9.5, and with
# digit runs read as numbers 0.31 before 0.125: either mistake changes the order.
SCORES = [0.31, 0.125, 10.0, 9.5]
COLOURS = ["#b04030", "#3060b0", "#30a050", "#d0a020"]


def sweep(folder: Path) -> list[dict[str, Any]]:
    """A model x seed cells table as a CLI sweep records it: each cell's picture (the two models at different
    sizes) and speech written by the engine's output writer into the cell's folder, a caption and a score."""
    import torch
    from PIL import Image as PILImage
    from PIL import ImageDraw

    table = []
    for index, (model, seed) in enumerate(product(["tiny/sd", "tiny/sdxl"], [1, 2])):
        picture = PILImage.new("RGB", (64, 48) if model == "tiny/sd" else (96, 96), COLOURS[index])
        ImageDraw.Draw(picture).text((4, 4), f"{model}\nseed {seed}", fill="white")
        tone = torch.sin(torch.arange(4000) * (0.05 + 0.02 * index)).mul(0.3).unsqueeze(0)
        cell = folder / "cells" / str(index)
        table.append({"index": index, "inputs": {"model": model, "seed": seed, "steps": 4}, "outputs": {
            "image": write_output(Image.from_pil([picture]), cell, "image"),
            "speech": write_output(Audio(tone, 16000), cell, "speech"),
            "caption": f"a red fox in the snow, seed {seed}", "score": SCORES[index]},
            "seconds": 0.5 + index, "devices": ["cpu"], "cached": index == 3})
    return table


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A plain page in a fresh browser context; fails the test on errors in the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


def order(page: Any) -> list[int]:
    return [int(index) for index in page.eval_on_selector_all("tbody tr", "rows => rows.map(r => r.dataset.index)")]


def test_the_comparison_page_shows_every_cell_highlights_and_sorts(page: Any, shot: Shots, tmp_path: Path) -> None:
    folder = tmp_path / "sweep"
    html, _, _ = write_compare(folder, sweep(folder), title="Fox portrait: model × seed",
                               axes=["model", "seed", "steps"])
    page.goto(html.as_uri())
    page.wait_for_function("() => document.images.length === 4 && "
                           "Array.from(document.images).every((image) => image.complete && image.naturalWidth > 0)")
    sizes = page.eval_on_selector_all("img", "images => images.map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes == [[64, 48], [64, 48], [96, 96], [96, 96]]
    assert page.eval_on_selector_all("img", "images => images.map(i => i.getAttribute('src'))") == [
        f"cells/{index}/image.png" for index in range(4)], "relative to the page: the folder can move"
    page.wait_for_function("() => Array.from(document.querySelectorAll('audio')).every((a) => a.readyState >= 1)")
    durations = page.eval_on_selector_all("audio", "players => players.map(p => p.duration)")
    assert durations == [pytest.approx(0.25, abs=0.01)] * 4

    tints = "name => Array.from(document.querySelectorAll(`td[data-column=${name}]`), " \
            "(td) => [td.classList.contains('differs'), getComputedStyle(td).backgroundColor])"
    model, seed, steps = (page.evaluate(tints, name) for name in ("model", "seed", "steps"))
    assert all(differs for differs, _ in model + seed) and not any(differs for differs, _ in steps)
    assert model[0][1] == model[1][1] != model[2][1] == model[3][1], "one tint per model"
    assert seed[0][1] == seed[2][1] != seed[1][1] == seed[3][1], "one tint per seed"
    assert len({colour for _, colour in steps}) == 1 and steps[0][1] not in {colour for _, colour in model + seed}
    shot(page, "the comparison page")

    page.click("th[data-column=score] button")
    assert order(page) == [1, 0, 3, 2], "by score, as numbers"
    assert page.get_attribute("th[data-column=score]", "aria-sort") == "ascending"
    assert page.eval_on_selector_all("td[data-column=score]", "cells => cells.map(c => c.textContent)") == [
        "0.125", "0.31", "9.5", "10"]
    shot(page, "sorted by score")
    page.click("th[data-column=score] button")
    assert order(page) == [2, 3, 0, 1], "a second click sorts the other way"
    assert page.get_attribute("th[data-column=score]", "aria-sort") == "descending"
    page.click("th[data-column=model] button")
    assert order(page) == [0, 1, 2, 3], "text columns sort as text; equal values keep their order"
    assert page.get_attribute("th[data-column=score]", "aria-sort") is None


def submit_and_wait(server: Server, body: dict[str, Any]) -> str:
    """POST a run to the served API and wait for it to finish; its id."""
    request = urllib.request.Request(f"{server.url}/api/runs", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        run_id = str(json.load(answer)["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{server.url}/api/runs/{run_id}", timeout=30) as answer:
            if json.load(answer)["status"] not in ("queued", "running"):
                return run_id
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def test_the_served_page_links_no_script_url_and_runs_only_its_own_script(page: Any, server: Server,
                                                                           shot: Shots) -> None:
    """A sweep whose values are media-shaped objects with script URLs, over a graph with a picture output, opened
    from the server in Chromium: every link and source on the page is one of the server's artifacts, clicking the
    hostile values runs nothing, the page's own sorting script runs under its policy, and a handler injected
    into the page is blocked by it."""
    hostile = [{"url": url, "media_type": kind} for url, kind in (
        ("javascript:window.pwned='link'", "image/png"), ("JAVASCRIPT:window.pwned='audio'", "audio/wav"),
        ("data:text/html,<script>window.pwned='data'</script>", "text/html"))]
    graph = {"inputs": {"pick": {"type": "json", "default": 0}},
             "nodes": {"dot": {"type": "image.load", "inputs": {"path": "dot.png"}}},
             "outputs": {"picture": {"from": "dot.image"}}}
    run_id = submit_and_wait(server, {"graph": graph, "sweep": {"axes": {"pick": hostile}}})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{server.url}/api/runs/{run_id}/compare")
    page.wait_for_function("() => document.images.length === 3 && "
                           "Array.from(document.images).every((image) => image.complete && image.naturalWidth > 0)")
    urls = page.eval_on_selector_all("[href], [src]", "all => all.map(e => e.getAttribute('href') || "
                                                      "e.getAttribute('src'))")
    assert urls and all(url.startswith("/api/artifacts/") for url in urls), urls
    for cell in page.query_selector_all("td[data-column=pick]"):
        cell.click()
    assert page.url.endswith(f"/api/runs/{run_id}/compare") and page.evaluate("() => window.pwned") is None
    shot(page, "hostile values shown as text")

    page.click("th[data-column=pick] button")
    assert page.get_attribute("th[data-column=pick]", "aria-sort") == "ascending", "the page's own script runs"
    blocked = page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation", (event) => resolve(event.violatedDirective));
        document.body.insertAdjacentHTML("beforeend", '<img src="/api/artifacts/none" onerror="window.pwned=1">');
        setTimeout(() => resolve("nothing blocked"), 5000);  // without a policy the handler just runs
    })""")
    assert blocked.startswith("script-src") and page.evaluate("() => window.pwned") is None
    assert dialogs == []
