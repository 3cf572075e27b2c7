"""Image plumbing: ``image.load``, ``image.save``, ``image.grid``, ``image.resize`` (CPU-light, no models).

``image.load`` keys its cache entry on the file's content, so editing the picture re-runs what depends on it and
nothing else, and refuses pictures over the pixel budget before decoding them. ``image.save`` always runs and
never overwrites: each call writes the next free numbered file. Both open their paths through ``ctx.files``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.context import NodeContext
from nodeforge.engine.declarations import FileInput, FolderInput
from nodeforge.engine.errors import NodeError
from nodeforge.engine.files import FileAccess
from nodeforge.engine.limits import image_problem
from nodeforge.engine.media_io import file_digest
from nodeforge.engine.model_source import ModelSource
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs
from nodeforge.engine.values import Image

ARTIFACT_REFERENCE = re.compile(r"^(?:/api/artifacts/)?([0-9a-f]{32})$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
RUN_CHUNK = "nodeforge.run"


class Load(Node):
    """Load an image file (PNG, JPEG, WebP, GIF, BMP, TIFF) or an uploaded artifact. Cached by the file's content:
    change the file and what depends on it runs again."""

    type_id = "image.load"
    version = "1.0.0"

    class Inputs(NodeInputs):
        path: str = FileInput(description="A file path (relative to the working folder or the graph's folder; on a "
                                          "server, inside the folders it allows), or an uploaded artifact id")

    class Outputs(NodeOutputs):
        image: Image

    def fingerprint(self, literals: Mapping[str, Any], env: GraphEnv) -> str | None:
        reference = literals.get("path")
        if not isinstance(reference, str):
            return None
        path = FileAccess(search=tuple(env.library.folders)).find_file(reference)
        if path is not None and not ARTIFACT_REFERENCE.match(reference):
            return "sha256:" + file_digest(path)
        match = ARTIFACT_REFERENCE.match(reference)
        return f"artifact:{match.group(1)}" if match else None

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        from PIL import Image as PILImage
        from PIL import ImageOps, UnidentifiedImageError

        path = ctx.files.read(inputs.path, input="path")
        try:
            too_large = image_problem(path, ctx.files.limits)
            if too_large:
                raise NodeError(f"{path.name}: {too_large}", input="path")
            with PILImage.open(path) as picture:
                picture.seek(0)
                upright = ImageOps.exif_transpose(picture)
                upright.load()
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise NodeError(f"cannot decode {path.name} as an image ({exc}); accepted: PNG, JPEG, WebP, GIF, BMP, "
                            "TIFF", input="path") from None
        if upright.mode not in ("RGB", "RGBA"):
            has_alpha = upright.mode in ("LA", "PA") or "transparency" in upright.info
            upright = upright.convert("RGBA" if has_alpha else "RGB")
        return self.Outputs(image=Image.from_pil([upright]))


class Save(Node):
    """Save images as PNG files (``<name>_00001.png``, the next free number; never overwrites), with the run's
    id and this node's id in a text chunk. Always runs, even when everything upstream is cached."""

    type_id = "image.save"
    version = "1.0.0"
    side_effects = True

    class Inputs(NodeInputs):
        image: Image
        name: str = Field("image", description="File name prefix (letters, digits, '_', '.', '-')")
        folder: str = FolderInput("", description="Where to write; empty: the data dir's outputs folder (on a server: "
                                                  "a folder under it, or one given with --allow-write-dir)")

    class Outputs(NodeOutputs):
        path: str = Field(description="The first file written")
        paths: list[str] = Field(description="Every file written, one per image of the batch")

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        name = literals.get("name")
        if isinstance(name, str) and (not SAFE_NAME.match(name) or ".." in name):
            return [("name", f"'{name}' is not a plain file name prefix (letters, digits, '_', '.', '-')")]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        from PIL.PngImagePlugin import PngInfo

        folder = ctx.files.write_folder(inputs.folder, input="folder")
        info = PngInfo()
        info.add_itxt(RUN_CHUNK, json.dumps({"id": ctx.run_id, "node": ctx.node_id}))
        paths = [str(_write_next(folder, inputs.name, picture, info)) for picture in inputs.image.to_pil()]
        return self.Outputs(path=paths[0], paths=paths)


def _write_next(folder: Path, name: str, picture: Any, info: Any) -> Path:
    """Write to the first free ``<name>_NNNNN.png``; exclusive creation, so concurrent saves never collide."""
    numbers = [int(m.group(1)) for p in folder.glob(f"{name}_*.png")
               if (m := re.fullmatch(re.escape(name) + r"_(\d+)\.png", p.name))]
    number = max(numbers, default=0) + 1
    while True:
        target = folder / f"{name}_{number:05d}.png"
        try:
            with target.open("xb") as handle:
                picture.save(handle, format="PNG", pnginfo=info)
            return target
        except FileExistsError:
            number += 1


class Grid(Node):
    """Lay images out in a grid (every image of every batch is one cell), with optional labels under the cells:
    for comparing models, seeds or settings side by side. ``columns`` 0 makes it as square as possible."""

    type_id = "image.grid"
    version = "1.0.0"

    class Inputs(NodeInputs):
        images: list[Image] = Field(description="Images (or batches) in reading order")
        columns: int = Field(0, ge=0, le=256, description="Cells per row; 0: as square as possible")
        labels: list[str] = Field(default_factory=list, description="One label per cell, drawn under it")
        gap: int = Field(4, ge=0, le=256, description="Pixels between cells")
        background: str = Field("#ffffff", description="Colour between and behind cells (CSS colour)")

    class Outputs(NodeOutputs):
        image: Image

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        background = literals.get("background")
        if isinstance(background, str) and _colour(background) is None:
            return [("background", f"'{background}' is not a colour (e.g. #ffffff, white, rgb(0,0,0))")]
        return []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        from PIL import Image as PILImage
        from PIL import ImageDraw

        cells = [picture for image in inputs.images for picture in image.to_pil()]
        if not cells:
            raise NodeError("no images to lay out", input="images")
        if len(inputs.labels) > len(cells):
            raise NodeError(f"{len(inputs.labels)} labels for {len(cells)} images; give at most one per image",
                            input="labels")
        background = _colour(inputs.background)
        if background is None:
            raise NodeError(f"'{inputs.background}' is not a colour (e.g. #ffffff, white)", input="background")
        columns = inputs.columns or math.ceil(math.sqrt(len(cells)))
        rows = math.ceil(len(cells) / columns)
        cell_w, cell_h = max(c.width for c in cells), max(c.height for c in cells)
        font, strip = label_font(cell_w) if inputs.labels else (None, 0)
        gap = inputs.gap
        sheet = PILImage.new("RGB", (columns * cell_w + (columns + 1) * gap,
                                     rows * (cell_h + strip) + (rows + 1) * gap), background)
        draw = ImageDraw.Draw(sheet)
        for index, cell in enumerate(cells):
            row, column = divmod(index, columns)
            left, top = gap + column * (cell_w + gap), gap + row * (cell_h + strip + gap)
            rgba = cell.convert("RGBA")
            sheet.paste(rgba, (left + (cell_w - cell.width) // 2, top + (cell_h - cell.height) // 2), rgba)
            if font is not None and index < len(inputs.labels):
                text = fit_text(draw, inputs.labels[index], font, cell_w)
                width = draw.textlength(text, font=font)
                ink = (0, 0, 0) if sum(background) > 382 else (255, 255, 255)
                draw.text((left + (cell_w - width) / 2, top + cell_h + 2), text, fill=ink, font=font)
        return self.Outputs(image=Image.from_pil([sheet]))


def _colour(text: str) -> tuple[int, int, int] | None:
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError:
        return None


def label_font(cell_width: int) -> tuple[Any, int]:
    """The label font for cells of this width (a tenth of it, 10 to 32 px) and the height of one label line."""
    size = max(10, min(32, cell_width // 10))
    return text_font(size), size + 6


def text_font(size: int) -> Any:
    """PIL's default font at ``size`` px; its small fixed bitmap font where Pillow has no FreeType."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def fit_text(draw: Any, text: str, font: Any, width: int) -> str:
    """The label, shortened with an ellipsis until it fits the cell's width."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


class Resize(Node):
    """Resize images: by ``scale``, to ``width`` and/or ``height`` (one of them 0 keeps the aspect ratio), or to a
    number of ``megapixels`` (of 1024 x 1024 pixels, as ComfyUI's ImageScaleToTotalPixels). With width and height
    both given, ``mode`` says how: stretch to exactly that size, fit inside it, or fill it and crop the centre.
    Sizes can be rounded to a ``multiple`` (8 for diffusion models)."""

    type_id = "image.resize"
    version = "1.1.0"

    class Inputs(NodeInputs):
        image: Image
        width: int = Field(0, ge=0, le=16384, description="Target width in pixels; 0: from height and aspect")
        height: int = Field(0, ge=0, le=16384, description="Target height in pixels; 0: from width and aspect")
        scale: float = Field(0.0, ge=0.0, le=64.0, description="Scale factor (instead of width/height)")
        megapixels: float = Field(0.0, ge=0.0, le=64.0, description="Total size in megapixels of 1024x1024, aspect "
                                                                    "kept (instead of width/height or scale)")
        mode: Literal["stretch", "fit", "fill"] = Field("fit", description="With width and height both given")
        filter: Literal["bicubic", "bilinear", "area", "nearest"] = Field("bicubic", description="Resampling")
        multiple: int = Field(1, ge=1, le=256, description="Round the size to a multiple of this")

    class Outputs(NodeOutputs):
        image: Image

    def check(self, literals: Mapping[str, Any], bound: frozenset[str],
              models: ModelSource) -> list[tuple[str | None, str]]:
        known = {name: literals.get(name) if name in bound else 0
                 for name in ("width", "height", "scale", "megapixels")}
        problem = _resize_problem(known["width"], known["height"], known["scale"], known["megapixels"])
        return [problem] if problem else []

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        import torch
        from torch.nn import functional as F  # noqa: N812

        pixels = inputs.image.tensor.float()
        height, width = inputs.image.height, inputs.image.width
        crop: tuple[int, int] | None = None
        if inputs.megapixels > 0:
            scale = math.sqrt(int(inputs.megapixels * 1024 * 1024) / (width * height))
            size: tuple[float, float] = (round(height * scale), round(width * scale))
        elif inputs.scale > 0:
            size = (height * inputs.scale, width * inputs.scale)
        elif inputs.width and inputs.height:
            ratio_w, ratio_h = inputs.width / width, inputs.height / height
            if inputs.mode == "stretch":
                size = (inputs.height, inputs.width)
            else:
                ratio = min(ratio_w, ratio_h) if inputs.mode == "fit" else max(ratio_w, ratio_h)
                size = (height * ratio, width * ratio)
                if inputs.mode == "fill":
                    crop = (_rounded(inputs.height, inputs.multiple), _rounded(inputs.width, inputs.multiple))
        elif inputs.width:
            size = (height * inputs.width / width, inputs.width)
        else:
            size = (inputs.height, width * inputs.height / height)
        target = (_rounded(size[0], 1 if crop else inputs.multiple), _rounded(size[1], 1 if crop else inputs.multiple))
        if crop:
            target = (max(target[0], crop[0]), max(target[1], crop[1]))
        mode = {"nearest": "nearest-exact"}.get(inputs.filter, inputs.filter)
        antialias = inputs.filter in ("bicubic", "bilinear")
        if target != (height, width):
            pixels = F.interpolate(pixels, size=target, mode=mode, antialias=antialias) if antialias else \
                F.interpolate(pixels, size=target, mode=mode)
        if crop:
            top, left = (target[0] - crop[0]) // 2, (target[1] - crop[1]) // 2
            pixels = pixels[:, :, top:top + crop[0], left:left + crop[1]]
        return self.Outputs(image=Image(torch.clamp(pixels, 0, 1).contiguous()))


def _rounded(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _resize_problem(width: Any, height: Any, scale: Any, megapixels: Any = 0) -> tuple[str, str] | None:
    """Conflicting or missing size inputs; a value of None is not known yet (linked)."""
    if megapixels and (scale or width or height):
        return ("megapixels", "give either megapixels, scale or width/height, not more than one")
    if scale and (width or height):
        return ("scale", "give either scale or width/height, not both")
    if width == 0 and height == 0 and scale == 0 and megapixels == 0:
        return ("width", "give width, height, scale or megapixels")
    return None


class Repeat(Node):
    """A batch made of the images repeated ``times`` (ComfyUI's RepeatImageBatch): one picture drawn or
    transformed several times with one seed."""

    type_id = "image.repeat"
    version = "1.0.0"

    class Inputs(NodeInputs):
        image: Image
        times: int = Field(2, ge=1, le=64, description="How many copies of the batch")

    class Outputs(NodeOutputs):
        image: Image

    def run(self, inputs: Inputs, ctx: NodeContext) -> Outputs:
        return self.Outputs(image=Image(inputs.image.tensor.repeat(inputs.times, 1, 1, 1)))
