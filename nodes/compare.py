"""``image.compare``: the pictures of a sweep as one labelled XY sheet (CPU-light, no models).

A sweep's cells come row-major (``graph.sweep`` over model x seed gives every seed of the first model, then the
next model's), so the sheet takes them in that order with a column count, names the columns on top and the rows
on the left, and writes a title above and a footer (the inputs every cell shares) below: a sheet that still says
what it compares once it has left the run that made it. Pictures of different sizes are scaled into equal cells,
so a 512 px model and a 1024 px one are compared at one size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from nodeforge.engine.context import NodeContext
from nodeforge.engine.errors import NodeError
from nodeforge.engine.model_source import ModelSource
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image
from nodeforge.nodes.image_tools import fit_text, label_font, text_font

GAP = 4  # pixels around and between cells
PAPER = (255, 255, 255)
INK = (0, 0, 0)
TITLE_LINES, COLUMN_LINES, FOOTER_LINES = 3, 3, 8  # at most; longer texts end in an ellipsis


class Compare(Node):
    """An XY comparison sheet: the images in cell order (row-major: a row's cells, then the next row's), with
    column labels on top, row labels on the left, a title above and a footer below. Every picture of a batch is
    one cell; pictures of other sizes are scaled (aspect kept) into cells the size of the largest."""

    type_id = "image.compare"
    title = "Compare sheet (XY)"
    version = "1.0.0"

    class Inputs(NodeInputs):
        images: list[Image] = Field(description="The cells' images (or batches), row after row")
        columns: int = Field(0, ge=0, le=256, description="Cells per row; 0: one per column label, or as square "
                                                          "as possible without labels")
        row_labels: list[str] = Field(default_factory=list, description="One label per row, drawn on the left")
        column_labels: list[str] = Field(default_factory=list, description="One label per column, drawn on top")
        title: str = Field("", description="Drawn above the sheet")
        footer: str = Field("", description="Drawn under the sheet: e.g. the inputs every cell shares")

    class Outputs(NodeOutputs):
        image: Image = Field(description="The sheet (RGB)")

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        columns, labels = literals.get("columns"), literals.get("column_labels")
        if isinstance(columns, int) and columns > 0 and isinstance(labels, list) and len(labels) > columns:
            return [("column_labels", f"{len(labels)} column labels for {columns} columns; give at most one per "
                                      "column")]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        from PIL import Image as PILImage
        from PIL import ImageDraw

        pictures = [picture for image in inputs.images for picture in image.to_pil()]
        if not pictures:
            raise NodeError("no images to compare", input="images")
        columns = inputs.columns or len(inputs.column_labels) or math.ceil(math.sqrt(len(pictures)))
        rows = math.ceil(len(pictures) / columns)
        if len(inputs.row_labels) > rows:
            raise NodeError(f"{len(inputs.row_labels)} row labels for {_count(rows, 'row')} "
                            f"({_count(len(pictures), 'image')} in {_count(columns, 'column')}); give at most one "
                            "per row", input="row_labels")
        cell_w, cell_h = max(p.width for p in pictures), max(p.height for p in pictures)
        sheet = PILImage.new("RGB", (1, 1), PAPER)
        layout = Layout.measure(ImageDraw.Draw(sheet), inputs, columns, rows, (cell_w, cell_h))
        sheet = PILImage.new("RGB", layout.size, PAPER)
        draw = ImageDraw.Draw(sheet)
        for index, picture in enumerate(pictures):
            left, top = layout.cell(*divmod(index, columns))
            fitted = _fitted(picture.convert("RGBA"), cell_w, cell_h)
            sheet.paste(fitted, (left + (cell_w - fitted.width) // 2, top + (cell_h - fitted.height) // 2), fitted)
        layout.draw_labels(draw)
        return self.Outputs(image=Image.from_pil([sheet]))


@dataclass(frozen=True)
class Layout:
    """Where everything goes: label bands around a grid of equal cells. The label font follows from the cell
    width (a tenth of it, as ``image.grid``'s) and the row band is a fixed share of it, so a sheet's geometry is
    known from its cells and which labels it has; texts wrap (at spaces, and inside a word too long for a line,
    so ``tiny/sd`` and ``tiny/sdxl`` never shorten to the same label), and the title, the column band and the
    footer grow a line per wrapped line."""

    cell_size: tuple[int, int]
    columns: int
    rows: int
    font: Any
    line: int  # height of one label line
    title_font: Any
    title_line: int
    title: list[str]  # each text as its wrapped lines
    column_labels: list[list[str]]
    row_labels: list[list[str]]
    footer: list[str]
    row_band: int  # width of the row labels' band on the left

    @classmethod
    def measure(cls, draw: Any, inputs: Compare.Inputs, columns: int, rows: int,
                cell_size: tuple[int, int]) -> Layout:
        cell_w, cell_h = cell_size
        font, line = label_font(cell_w)
        size = line - 6
        title_size = size * 3 // 2
        title_font = text_font(title_size)
        row_band = max(cell_w * 3 // 4, 8 * size) if inputs.row_labels else 0
        width = row_band + GAP + columns * (cell_w + GAP) - 2 * GAP
        return cls(cell_size, columns, rows, font, line, title_font, title_size + 6,
                   _wrapped(draw, inputs.title, title_font, width, TITLE_LINES),
                   [_wrapped(draw, label, font, cell_w, COLUMN_LINES) for label in inputs.column_labels],
                   [_wrapped(draw, label, font, row_band - 2 * GAP, max(1, cell_h // line))
                    for label in inputs.row_labels],
                   _wrapped(draw, inputs.footer, font, width, FOOTER_LINES), row_band)

    @property
    def title_band(self) -> int:
        return GAP + len(self.title) * self.title_line if self.title else 0

    @property
    def column_band(self) -> int:
        return self.line * max(1, *map(len, self.column_labels)) if self.column_labels else 0

    @property
    def footer_top(self) -> int:
        return self.title_band + self.column_band + GAP + self.rows * (self.cell_size[1] + GAP)

    @property
    def size(self) -> tuple[int, int]:
        footer = len(self.footer) * self.line + GAP if self.footer else 0
        return self.row_band + GAP + self.columns * (self.cell_size[0] + GAP), self.footer_top + footer

    def cell(self, row: int, column: int) -> tuple[int, int]:
        """The top-left corner of a cell."""
        cell_w, cell_h = self.cell_size
        return (self.row_band + GAP + column * (cell_w + GAP),
                self.title_band + self.column_band + GAP + row * (cell_h + GAP))

    def draw_labels(self, draw: Any) -> None:
        """Title and footer centred on the sheet, column labels centred over their cells (their last lines on
        the band's bottom, next to the cells), row labels centred beside theirs."""
        cell_w, cell_h = self.cell_size
        width = self.size[0]
        for index, text in enumerate(self.title):
            _centred(draw, text, self.title_font, 0, width, GAP + index * self.title_line)
        for column, lines in enumerate(self.column_labels):
            top = self.title_band + self.column_band - len(lines) * self.line
            for index, text in enumerate(lines):
                _centred(draw, text, self.font, self.cell(0, column)[0], cell_w, top + index * self.line + 2)
        for row, lines in enumerate(self.row_labels):
            top = self.cell(row, 0)[1] + (cell_h - len(lines) * self.line) // 2
            for index, text in enumerate(lines):
                _centred(draw, text, self.font, GAP, self.row_band - 2 * GAP, top + index * self.line + 2)
        for index, text in enumerate(self.footer):
            _centred(draw, text, self.font, 0, width, self.footer_top + index * self.line + 2)


def _fitted(picture: Any, width: int, height: int) -> Any:
    """The picture scaled to fit the cell with its aspect ratio kept; unchanged when it is the cell's size."""
    from PIL import Image as PILImage

    if picture.size == (width, height):
        return picture
    scale = min(width / picture.width, height / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, PILImage.Resampling.LANCZOS)


def _wrapped(draw: Any, text: str, font: Any, width: int, most: int) -> list[str]:
    """The text in lines that fit ``width``: broken at its own newlines, at spaces, and inside a word wider than
    a line; at most ``most`` lines, the last ending in an ellipsis when there were more."""
    lines: list[str] = []
    for paragraph in text.strip().splitlines():
        line = ""
        for piece in (piece for word in paragraph.split() for piece in _pieces(draw, word, font, width)):
            joined = f"{line} {piece}" if line else piece
            if line and draw.textlength(joined, font=font) > width:
                lines.append(line)
                joined = piece
            line = joined
        if line:
            lines.append(line)
    if len(lines) > most:
        lines = lines[:most - 1] + [fit_text(draw, lines[most - 1] + "…", font, width)]
    return lines


def _pieces(draw: Any, word: str, font: Any, width: int) -> list[str]:
    """A word cut into pieces that each fit ``width`` (one piece when it fits; at least a character each)."""
    pieces, piece = [], ""
    for char in word:
        if piece and draw.textlength(piece + char, font=font) > width:
            pieces.append(piece)
            piece = ""
        piece += char
    return [*pieces, piece]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _centred(draw: Any, text: str, font: Any, left: int, width: int, top: int) -> None:
    draw.text((left + (width - draw.textlength(text, font=font)) / 2, top), text, fill=INK, font=font)
