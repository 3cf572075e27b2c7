"""mask.from_image, mask.grow, mask.blur, mask.invert and image.pad, run through the engine on exact pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.session import RunResult, Session
from nodeforge.engine.values import Image, Mask
from tests.nodes.image_support import draw_picture, image_executor, pixels, run_nodes, succeeded

__all__ = ["image_executor"]


def run_on(session: Session, nodes: dict[str, Any], outputs: tuple[str, ...] = (), **values: Image) -> RunResult:
    """Run ``nodes`` with the given values as graph inputs. A graph input cannot be a mask, so each Mask value
    ``name`` comes in as a one-channel image and a node ``name`` (mask.from_image, which passes one channel through
    unchanged) makes it a mask: link ``{"from": "<name>.mask"}``. Values are keyed ``node.port``: of the nodes nothing
    consumes, or of ``outputs`` (``node.port``) when given."""
    sources = {name: node("mask.from_image", image={"input": name}, channel="luminance")
               for name, value in values.items() if isinstance(value, Mask)}
    inputs = {name: {"type": "image"} for name in values}
    pictures = {name: Image(value.tensor) for name, value in values.items()}
    document: dict[str, Any] = {"inputs": inputs, "nodes": {**sources, **nodes}}
    if outputs:
        document["outputs"] = {source.replace(".", "_"): {"from": source} for source in outputs}
    result = session.run(parse_document(document), pictures)
    for source in outputs:
        result.values.setdefault(source, result.values.get(source.replace(".", "_")))
    return result


def node(type_id: str, **inputs: Any) -> dict[str, Any]:
    return {"type": type_id, "inputs": inputs}


def square_mask(size: int = 40, start: int = 10, end: int = 20, value: float = 1.0) -> Mask:
    """A mask of ``value`` over rows and columns ``start..end-1``, 0 elsewhere."""
    import torch

    plane = torch.zeros(1, 1, size, size)
    plane[:, :, start:end, start:end] = value
    return Mask(plane)


def span(line: Any) -> tuple[int, int]:
    """First and last index of the non-zero entries of a 1-D tensor."""
    found = line.nonzero().flatten().tolist()
    return found[0], found[-1]


def test_alpha_is_read_as_the_area_to_repaint(image_executor: Session, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    picture = PILImage.new("RGBA", (8, 6), (10, 200, 30, 255))
    for x in range(2, 5):
        for y in range(1, 3):
            picture.putpixel((x, y), (0, 0, 0, 0))
    picture.putpixel((7, 5), (0, 0, 0, 128))
    picture.save(tmp_path / "painted.png")
    values = succeeded(run_nodes(image_executor, {
        "img": node("image.load", path=str(tmp_path / "painted.png")),
        "m": node("mask.from_image", image={"from": "img.image"})}))
    mask = pixels(values["m.mask"])
    assert tuple(mask.shape) == (1, 1, 6, 8) and isinstance(values["m.mask"], Mask)
    expected = [[0] * 8 for _ in range(6)]
    for x in range(2, 5):
        for y in range(1, 3):
            expected[y][x] = 255
    expected[5][7] = 127  # 1 - 128/255
    assert mask[0, 0].tolist() == expected


def test_alpha_of_a_picture_without_one_is_refused_on_image(image_executor: Session) -> None:
    import torch

    result = run_on(image_executor, {"m": node("mask.from_image", image={"input": "picture"})},
                    picture=Image(torch.ones(1, 3, 4, 4)))
    assert result.record.nodes["m"].error == (
        "node 'm' (mask.from_image), input 'image': the image has no alpha channel (an RGB image), so there is no "
        "transparent area to read as the mask; use channel 'luminance' for a black-and-white mask picture (white "
        "= repaint), or paint the mask on image.load in the editor")


def test_luminance_and_colour_channels(image_executor: Session) -> None:
    import torch

    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    picture = Image(colours.T.reshape(1, 3, 1, 4).contiguous())
    nodes = {channel: node("mask.from_image", image={"input": "picture"}, channel=channel)
             for channel in ("luminance", "red", "green", "blue")}
    values = succeeded(run_on(image_executor, nodes, picture=picture))
    assert pixels(values["luminance.mask"]).flatten().tolist() == [76, 150, 29, 255]  # BT.601: .299 .587 .114
    assert pixels(values["red.mask"]).flatten().tolist() == [255, 0, 0, 255]
    assert pixels(values["green.mask"]).flatten().tolist() == [0, 255, 0, 255]
    assert pixels(values["blue.mask"]).flatten().tolist() == [0, 0, 255, 255]


def test_luminance_matches_the_picture_saved_as_greyscale(image_executor: Session) -> None:
    import numpy as np
    import torch

    picture = draw_picture(48)
    grey = torch.from_numpy(np.asarray(picture.convert("L"), dtype=np.int16))
    values = succeeded(run_on(image_executor, {"m": node("mask.from_image", image={"input": "picture"},
                                                         channel="luminance")}, picture=Image.from_pil([picture])))
    assert int((pixels(values["m.mask"])[0, 0].short() - grey).abs().max()) <= 1


def test_invert(image_executor: Session) -> None:
    values = succeeded(run_on(image_executor, {"i": node("mask.invert", mask={"from": "mask.mask"})},
                              mask=square_mask(8, 2, 5, value=0.25)))
    inverted = pixels(values["i.mask"])[0, 0]
    assert inverted[3, 3] == 191 and inverted[0, 0] == 255 and inverted[5, 5] == 255
    assert int((inverted == 191).sum()) == 9


@pytest.mark.parametrize(("amount", "edges"), [(3, (7, 22)), (-3, (13, 16)), (0, (10, 19)), (1, (9, 20))])
def test_grow_moves_each_edge_by_the_pixels(image_executor: Session, amount: int, edges: tuple[int, int]) -> None:
    values = succeeded(run_on(image_executor, {"g": node("mask.grow", mask={"from": "mask.mask"}, pixels=amount)},
                              mask=square_mask()))
    grown = pixels(values["g.mask"])[0, 0]
    first, last = edges
    expected = square_mask(40, first, last + 1).tensor[0, 0]
    assert grown.equal((expected * 255).byte()), "a square kernel keeps a square a square, each side moved"
    assert span(grown[15]) == edges and span(grown[:, 15]) == edges


def test_grow_keeps_soft_values_and_ignores_the_border(image_executor: Session) -> None:
    import torch

    full = Mask(torch.ones(1, 1, 12, 12))
    nodes = {"grown": node("mask.grow", mask={"from": "soft.mask"}, pixels=2),
             "shrunk": node("mask.grow", mask={"from": "full.mask"}, pixels=-4),
             "far": node("mask.grow", mask={"from": "soft.mask"}, pixels=500)}
    values = succeeded(run_on(image_executor, nodes, soft=square_mask(12, 5, 6, value=0.5), full=full))
    soft = pixels(values["grown.mask"])[0, 0]
    assert int((soft == 128).sum()) == 25 and int((soft == 0).sum()) == 144 - 25
    assert pixels(values["shrunk.mask"]).min() == 255, "the picture's border is not an edge of the mask"
    assert pixels(values["far.mask"]).min() == 128, "a radius past the picture's size covers all of it"


def test_blur_feathers_an_edge_symmetrically(image_executor: Session) -> None:
    import torch

    step = torch.zeros(1, 1, 8, 40)
    step[:, :, :, 20:] = 1.0
    nodes = {"b": node("mask.blur", mask={"from": "step.mask"}, radius=2.0),
             "none": node("mask.blur", mask={"from": "step.mask"}, radius=0.0),
             "whole": node("mask.blur", mask={"from": "full.mask"}, radius=5.0)}
    values = succeeded(run_on(image_executor, nodes, step=Mask(step), full=Mask(torch.ones(1, 1, 6, 6))))
    row = values["b.mask"].tensor[0, 0, 4]
    assert bool((values["b.mask"].tensor == row).all()), "a vertical edge blurs the same on every row"
    assert 0.0 < float(row[19]) < 0.5 < float(row[20]) < 1.0
    assert bool((row[1:] >= row[:-1]).all()), "the ramp rises monotonically"
    assert torch.allclose(row[14:20] + row[20:26].flip(0), torch.ones(6), atol=1e-6), "symmetric about the edge"
    assert float(row[:20 - 6].max()) == 0.0 and float(row[20 + 6:].min()) == pytest.approx(1.0, abs=1e-6), \
        "the kernel reaches 3 radii, no further"
    standard = torch.distributions.Normal(0.0, 2.0)
    assert float(row[20]) == pytest.approx(float(standard.cdf(torch.tensor(0.5))), abs=0.01)
    assert values["none.mask"].tensor.equal(step)
    assert pixels(values["whole.mask"]).min() == 255, "edges are replicated: a mask to the border stays whole"


def test_pad_adds_grey_room_and_masks_exactly_the_new_area(image_executor: Session, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    PILImage.new("RGB", (6, 4), (200, 10, 20)).save(tmp_path / "red.png")
    values = succeeded(run_nodes(image_executor, {
        "img": node("image.load", path=str(tmp_path / "red.png")),
        "pad": node("image.pad", image={"from": "img.image"}, left=3, top=2, right=1, bottom=0)}))
    image, mask = pixels(values["pad.image"])[0], pixels(values["pad.mask"])[0, 0]
    assert tuple(image.shape) == (3, 6, 10) and tuple(mask.shape) == (6, 10)
    inside = [(y, x) for y in range(6) for x in range(10) if 2 <= y < 6 and 3 <= x < 9]
    for y in range(6):
        for x in range(10):
            new = (y, x) not in inside
            assert image[:, y, x].tolist() == ([128, 128, 128] if new else [200, 10, 20]), (y, x)
            assert int(mask[y, x]) == (255 if new else 0), (y, x)


def test_pad_feather_ramps_into_the_picture_from_padded_sides_only(image_executor: Session) -> None:
    import torch

    picture = Image(torch.rand(2, 3, 10, 12))
    values = succeeded(run_on(image_executor, {"pad": node("image.pad", image={"input": "picture"}, left=4,
                                                           feather=3)}, picture=picture))
    mask = values["pad.mask"].tensor
    assert tuple(mask.shape) == (2, 1, 10, 16), "one mask per image of the batch"
    assert values["pad.image"].tensor[:, :, :, 4:].equal(picture.tensor)
    expected_row = torch.tensor([1.0] * 4 + [1.0, 4 / 9, 1 / 9] + [0.0] * 9)
    assert torch.allclose(mask, expected_row.expand(2, 1, 10, 16), atol=1e-6), "((3 - d) / 3)² for d = 0, 1, 2"


def test_pad_feather_takes_the_nearest_padded_side(image_executor: Session) -> None:
    import torch

    values = succeeded(run_on(image_executor, {"pad": node("image.pad", image={"input": "picture"}, top=1,
                                                           right=1, feather=2)}, picture=Image(torch.rand(1, 3, 5, 5))))
    inside = values["pad.mask"].tensor[0, 0, 1:, :5]
    d = torch.minimum(torch.arange(5.0).view(-1, 1), 4 - torch.arange(5.0).view(1, -1))
    assert torch.allclose(inside, ((2 - d) / 2).clamp(min=0) ** 2, atol=1e-6)


def test_pad_nothing_and_alpha(image_executor: Session) -> None:
    import torch

    picture = Image(torch.rand(1, 4, 3, 5))
    nodes = {"same": node("image.pad", image={"input": "picture"}),
             "wide": node("image.pad", image={"input": "picture"}, left=2, bottom=1),
             "again": node("mask.from_image", image={"from": "wide.image"})}
    values = succeeded(run_on(image_executor, nodes, ("same.image", "same.mask", "wide.image", "wide.mask",
                                                               "again.mask"), picture=picture))
    assert values["same.image"].tensor.equal(picture.tensor)
    assert values["same.mask"].tensor.equal(torch.zeros(1, 1, 3, 5))
    alpha = values["wide.image"].tensor[0, 3]
    assert float(alpha[:, :2].max()) == 0.0 and float(alpha[3].max()) == 0.0, "the new area is transparent"
    new_area = values["wide.mask"].tensor[0, 0] == 1
    assert bool((values["again.mask"].tensor[0, 0][new_area] == 1).all()), "mask.from_image reads the same area"


def test_negative_padding_is_refused_in_validation(image_executor: Session) -> None:
    with pytest.raises(GraphValidationError) as info:
        run_nodes(image_executor, {"img": node("image.load", path="unused.png"),
                                   "pad": node("image.pad", image={"from": "img.image"}, left=-1)})
    assert [(issue.node, issue.input) for issue in info.value.issues] == [("pad", "left")]
    assert "greater than or equal to 0" in info.value.issues[0].message


def test_a_mask_links_into_image_inputs(image_executor: Session) -> None:
    values = succeeded(run_on(image_executor, {"big": node("image.resize", image={"from": "mask.mask"}, scale=2.0)},
                              mask=square_mask(8, 2, 4)))
    assert tuple(values["big.image"].tensor.shape) == (1, 1, 16, 16)
