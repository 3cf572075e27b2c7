"""A sweep's comparison page as someone opens it from the run's folder: a file:// page in a real Chromium, its
pictures and sounds loaded from the files beside it, the swept values that differ tinted, and a numeric column
sorted by number when its header is clicked."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.compare import write_compare
from nodeforge.engine.media import write_output
from nodeforge.engine.values import Audio, Image
from tests.e2e.conftest import Shots

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
