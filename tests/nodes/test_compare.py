"""image.compare: the sheet's exact geometry from its cells and label bands, cells holding their images' pixels,
labels drawn where they belong, and counts that do not fit named by input."""

from __future__ import annotations

from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.session import RunResult, Session
from nodeforge.engine.values import Image
from tests.nodes.image_support import image_executor, pixels, succeeded

__all__ = ["image_executor"]

WHITE, DARK = 255, 100


def solid(colour: tuple[int, int, int], width: int, height: int, batch: int = 1) -> Image:
    import torch

    return Image(torch.tensor(colour, dtype=torch.float32).div(255).view(1, 3, 1, 1).expand(batch, 3, height,
                                                                                             width).contiguous())


def compare(session: Session, pictures: dict[str, Image], **inputs: Any) -> RunResult:
    """Run image.compare on graph-input pictures, in the order given."""
    document = parse_document({"inputs": {name: {"type": "image"} for name in pictures}, "nodes": {"cmp": {
        "type": "image.compare", "inputs": {"images": [{"input": name} for name in pictures], **inputs}}}})
    return session.run(document, pictures)


def test_sheet_geometry_cells_and_labels(image_executor: Session) -> None:
    import torch

    noise = Image(torch.rand(1, 3, 10, 20, generator=torch.Generator().manual_seed(3)))
    pair = Image(torch.cat([solid((255, 255, 0), 10, 10).tensor, solid((255, 0, 255), 10, 10).tensor]))
    values = succeeded(compare(image_executor, {
        "noise": noise, "green": solid((0, 255, 0), 20, 10), "small": solid((0, 0, 255), 10, 5), "pair": pair},
        columns=3, row_labels=["tiny/sd", "tiny/sdxl"], column_labels=["s1", "s2", "s3"],
        title="Model x seed", footer="steps=4"))
    sheet = pixels(values["cmp.image"])[0]
    # Cells 20x10 (the largest picture): label font 10 px, a label line 16, the title's 15 px in a 21 px line;
    # the row band is max(3/4 of a cell, 8 label sizes) = 80; a gap of 4 around and between cells.
    title_band, column_band, row_band, footer_band = 4 + 21, 16, 80, 16 + 4
    assert tuple(sheet.shape) == (3, title_band + column_band + 4 + 2 * (10 + 4) + footer_band, row_band + 4 + 3 * 24)
    top, left = title_band + column_band + 4, row_band + 4
    assert sheet[:, top:top + 10, left:left + 20].equal(pixels(noise)[0]), "a cell's pixels are the image's"
    assert (sheet[:, top:top + 10, left + 24:left + 44] == torch.tensor([0, 255, 0]).view(3, 1, 1)).all()
    small = sheet[:, top:top + 10, left + 48:left + 68]
    assert (small == torch.tensor([0, 0, 255]).view(3, 1, 1)).all(), "10x5 scaled up to fill the 20x10 cell"
    second = top + 14
    yellow = sheet[:, second:second + 10, left:left + 20]
    assert (yellow[:, :, 5:15] == torch.tensor([255, 255, 0]).view(3, 1, 1)).all(), "a batch: one cell a picture"
    assert (yellow[:, :, :5] == WHITE).all() and (yellow[:, :, 15:] == WHITE).all(), "10x10 centred, not stretched"
    assert (sheet[:, second:second + 10, left + 29:left + 39] == torch.tensor([255, 0, 255]).view(3, 1, 1)).all()
    assert (sheet[:, second:second + 10, left + 48:left + 68] == WHITE).all(), "no sixth picture: an empty cell"
    dark = sheet.int().sum(dim=0) < 3 * DARK
    assert dark[:title_band].any(), "title"
    for column in range(3):
        assert dark[title_band:title_band + column_band, left + 24 * column:left + 24 * column + 20].any(), column
    for row in range(2):
        assert dark[top + 14 * row - 3:top + 14 * row + 13, :row_band].any(), row
    assert dark[top + 2 * 14:].any(), "footer"
    assert not dark[top:top + 28, row_band:left].any(), "row labels stay in their band"


def test_without_labels_the_sheet_is_the_cells_and_columns_follow_the_labels(image_executor: Session) -> None:
    two = {"a": solid((9, 9, 9), 20, 10), "b": solid((9, 9, 9), 20, 10)}
    square = pixels(succeeded(compare(image_executor, two))["cmp.image"])
    assert tuple(square.shape) == (1, 3, 4 + 14, 4 + 2 * 24), "no labels, no bands; 2 images: 2 columns"
    labelled = pixels(succeeded(compare(image_executor, two, column_labels=["x", "y", "z"]))["cmp.image"])
    assert tuple(labelled.shape) == (1, 3, 16 + 4 + 14, 4 + 3 * 24), "columns 0: one per column label"
    one_row = pixels(succeeded(compare(image_executor, two, columns=1, row_labels=["p", "q"]))["cmp.image"])
    assert tuple(one_row.shape) == (1, 3, 4 + 2 * 14, 80 + 4 + 24)
    two_lines = pixels(succeeded(compare(image_executor, two, column_labels=["s\n1", "x"]))["cmp.image"])
    assert tuple(two_lines.shape) == (1, 3, 2 * 16 + 4 + 14, 4 + 2 * 24), "a line of the band per line of a label"


def test_long_labels_wrap_instead_of_shortening_to_the_same_text(image_executor: Session) -> None:
    two = {"a": solid((9, 9, 9), 64, 64), "b": solid((9, 9, 9), 64, 64)}
    sheet = pixels(succeeded(compare(image_executor, two, columns=1, row_labels=[
        "model=stabilityai/sdxl-turbo", "model=stabilityai/sdxl-turbo-v2"]))["cmp.image"])[0]
    band = max(64 * 3 // 4, 8 * 10)
    first, second = sheet[:, 4:4 + 64, :band], sheet[:, 4 + 68:4 + 68 + 64, :band]
    assert not first.equal(second), "the ends of the labels differ, so their drawings do"
    lines = (first.int().sum(dim=0) < 3 * DARK).any(dim=1).int().diff().eq(1).sum()
    assert int(lines) >= 2, "one word too wide for the band, broken over lines"


def test_more_labels_than_rows_or_columns_is_an_error_naming_the_input(image_executor: Session) -> None:
    two = {"a": solid((9, 9, 9), 4, 4), "b": solid((9, 9, 9), 4, 4)}
    result = compare(image_executor, two, columns=2, row_labels=["one", "two", "three"])
    assert result.record.nodes["cmp"].error == (
        "node 'cmp' (image.compare), input 'row_labels': 3 row labels for 1 row (2 images in 2 columns); give at "
        "most one per row")
    with pytest.raises(GraphValidationError) as info:
        compare(image_executor, two, columns=2, column_labels=["a", "b", "c"])
    assert [(issue.node, issue.input, issue.message) for issue in info.value.issues] == [
        ("cmp", "column_labels", "3 column labels for 2 columns; give at most one per column")]
    result = compare(image_executor, {}, columns=2)
    assert result.record.nodes["cmp"].error == "node 'cmp' (image.compare), input 'images': no images to compare"
