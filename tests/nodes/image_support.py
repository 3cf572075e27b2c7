"""Shared set-up for the image tests: one session per module (models load once), a drawn test picture, PSNR."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import RunResult, Session


def module_executor(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Session]:
    """A session without a result cache (every run computes) whose models stay loaded for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
        library = tmp_path_factory.mktemp("library")
        data = tmp_path_factory.mktemp("data")
        yield Session(GraphEnv(Registry.discover(), GraphLibrary([library])), None, workers=2, data_dir=data)


@pytest.fixture(scope="module")
def image_executor(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Session]:
    yield from module_executor(tmp_path_factory, shared_models_dir)


def run_nodes(session: Session, nodes: dict[str, Any], outputs: dict[str, str] | None = None,
              events: list[Event] | None = None, **kwargs: Any) -> RunResult:
    document: dict[str, Any] = {"nodes": nodes}
    if outputs:
        document["outputs"] = {name: {"from": source} for name, source in outputs.items()}
    if events is not None:
        kwargs["listener"] = events.append
    return session.run(parse_document(document), **kwargs)


def succeeded(result: RunResult) -> dict[str, Any]:
    assert result.record.status == "succeeded", result.record.error
    return result.values


def generate(model: str = "tiny/sd", **inputs: Any) -> dict[str, Any]:
    """An image.generate node on a tiny model: 64 px, 2 steps, guidance on."""
    return {"type": "image.generate", "inputs": {"prompt": "a red fox in the snow", "model": model, "width": 64,
                                                 "height": 64, "steps": 2, "guidance_scale": 4.0, "seed": 7,
                                                 **inputs}}


def draw_picture(size: int = 256) -> Any:
    """A PIL picture with edges, flat colours, thin lines and text: detail an upscaler can restore."""
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.new("RGB", (size, size), (235, 230, 220))
    draw = ImageDraw.Draw(picture)
    s = size / 256
    draw.rectangle((20 * s, 20 * s, 120 * s, 100 * s), fill=(200, 40, 40), outline=(20, 20, 20), width=round(4 * s))
    draw.ellipse((130 * s, 30 * s, 230 * s, 130 * s), fill=(40, 90, 200), outline=(0, 0, 0), width=round(3 * s))
    draw.polygon([(40 * s, 230 * s), (120 * s, 140 * s), (200 * s, 230 * s)], fill=(40, 160, 60))
    for x in range(0, size, max(1, round(16 * s))):
        draw.line((x, 150 * s, x + 40 * s, 250 * s), fill=(30, 30, 30), width=max(1, round(2 * s)))
    draw.text((30 * s, 105 * s), "nodeforge 42", fill=(0, 0, 0), font=ImageFont.load_default(size=round(22 * s)))
    return picture


def psnr(a: Any, b: Any) -> float:
    import torch

    return float(10 * torch.log10(1 / torch.mean((a.float() - b.float()) ** 2)))


def pixels(image: Any) -> Any:
    """uint8 pixels of an Image value, for exact comparisons (see P9: floats may differ in the last bits)."""
    return (image.tensor.detach().float().clamp(0, 1) * 255).round().byte().cpu()


def resident(session: Session) -> set[str]:
    """Keys of every model resident on any of the session's devices."""
    return {key for device in session.models.snapshot().values() for key in device["models"]}
