"""Step previews of real tiny pipelines: the image nodes (SD, Flux's packed latents, TAESD, inpainting),
``video.generate`` on tiny/wan, ``nodeforge run --previews DIR``, and the latent layouts and projections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event
from nodeforge.engine.previews import FolderSink, PreviewMethod, Previews
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session
from nodeforge.nodes.models.diffusion.latent_previews import FACTORS, project, spatial_latents, taesd_name

ROOT = Path(__file__).resolve().parents[2]
VIDEO = {"prompt": "a red fox running in the snow", "model": "tiny/wan", "frames": 9, "width": 64, "height": 64,
         "steps": 3}


def generate(model: str = "tiny/sd", steps: int = 4, width: int = 64, height: int = 64) -> dict[str, Any]:
    return {"type": "image.generate", "inputs": {"prompt": "a fox", "model": model, "steps": steps, "width": width,
                                                 "height": height, "guidance_scale": 0.0, "seed": 1}}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Session]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
        yield Session(GraphEnv(Registry.discover(), GraphLibrary([])), None, workers=2,
                      data_dir=tmp_path_factory.mktemp("data"))


def previewed(session: Session, node: dict[str, Any], folder: Path | None, method: PreviewMethod = "latent",
              ) -> tuple[list[Event], list[Event]]:
    """Run one node with every step previewed into ``folder``; its node.preview and node.warning events."""
    events: list[Event] = []
    previews = Previews(FolderSink(folder), method, interval=0, budget=None) if folder else None
    output = "video" if node["type"] == "video.generate" else "image"
    result = session.run(parse_document({"nodes": {"n": node}, "outputs": {"out": {"from": f"n.{output}"}}}),
                         listener=events.append, previews=previews)
    assert result.record.status == "succeeded", result.record.error
    return ([event for event in events if event.kind == "node.preview"],
            [event for event in events if event.kind == "node.warning"])


def assert_pictures(previews: list[Event], steps: int, size: tuple[int, int]) -> None:
    """Every step previewed, in order, each a JPEG of ``size`` at its link."""
    assert [(event.data.node, event.data.step, event.data.total) for event in previews] == [("n", s, steps)
                                                                            for s in range(1, steps + 1)]
    assert [event.seq for event in previews] == sorted(event.seq for event in previews)
    for event in previews:
        assert event.data.link is not None and (event.data.width, event.data.height) == size
        with PILImage.open(event.data.link) as picture:
            picture.load()
            assert picture.format == "JPEG" and picture.size == size and picture.mode == "RGB"


def test_sd_previews_every_step_as_the_latent_projection(session: Session, tmp_path: Path) -> None:
    previews, warnings = previewed(session, generate(), tmp_path)
    assert_pictures(previews, 4, (32, 32))  # the tiny SD VAE halves: one pixel per latent cell
    assert not warnings
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"n-{step:04d}.jpg" for step in range(1, 5)]


def test_without_previews_the_callback_only_reports_progress(session: Session) -> None:
    previews, _ = previewed(session, generate(steps=2), None)
    assert previews == []


def test_flux_packed_latents_are_unpacked_with_the_pixel_size(session: Session, tmp_path: Path) -> None:
    node = generate("tiny/flux", steps=3, width=64, height=48)
    previews, _ = previewed(session, node, tmp_path)
    assert_pictures(previews, 3, (64, 48))  # tiny/flux: 1 latent channel, VAE factor 1, packed 2x2


def test_taesd_previews_decode_to_the_image_size(session: Session, tmp_path: Path) -> None:
    events: list[Event] = []
    document = parse_document({"nodes": {"n": generate(steps=2)}})
    result = session.run(document, listener=events.append,
                         previews=Previews(FolderSink(tmp_path), "taesd", interval=0, budget=None))
    assert result.record.status == "succeeded", result.record.error
    assert any(event.kind == "model.loaded" and "taesd:tiny:" in (event.data.model or "") for event in events)
    assert_pictures([event for event in events if event.kind == "node.preview"], 2, (256, 256))  # 8x the latent


def test_taesd_for_other_latents_falls_back_to_the_projection_with_a_warning(session: Session,
                                                                             tmp_path: Path) -> None:
    node = generate("tiny/flux", steps=2, width=32, height=32)
    previews, warnings = previewed(session, node, tmp_path, "taesd")
    assert_pictures(previews, 2, (32, 32))
    assert [event.data.text for event in warnings] == [
        "previews use the latent projection: the TAESD takes 4-channel latents, this model makes 1"]


def test_inpainting_previews_its_steps(session: Session, tmp_path: Path) -> None:
    """image.inpaint on Flux (packed latents) previews through the same callback; image-to-image runs count the
    steps the strength leaves."""
    events: list[Event] = []
    document = parse_document({"nodes": {
        "source": generate("tiny/flux", steps=1, width=32, height=32),
        "pad": {"type": "image.pad", "inputs": {"image": {"from": "source.image"}, "left": 16}},
        "n": {"type": "image.inpaint", "inputs": {"image": {"from": "pad.image"}, "mask": {"from": "pad.mask"},
                                                  "prompt": "a fox", "model": "tiny/flux", "steps": 4,
                                                  "strength": 0.5}}},
        "outputs": {"out": {"from": "n.image"}}})
    result = session.run(document, listener=events.append,
                         previews=Previews(FolderSink(tmp_path), "latent", interval=0, budget=None))
    assert result.record.status == "succeeded", result.record.error
    assert_pictures([event for event in events if event.kind == "node.preview" and event.data.node == "n"], 2, (48, 32))


def test_video_generate_previews_the_middle_frame(session: Session, tmp_path: Path) -> None:
    previews, warnings = previewed(session, {"type": "video.generate", "inputs": VIDEO}, tmp_path, "taesd")
    assert_pictures(previews, 3, (8, 8))  # the Wan VAE's 8x: one pixel per latent cell
    assert [event.data.text for event in warnings] == [
        "previews use the latent projection: there is no TAESD for wan models"]


def test_cli_previews_folder(tmp_path: Path, shared_models_dir: Path) -> None:
    graph = tmp_path / "video.json"
    graph.write_text(json.dumps({"nodes": {"clip": {"type": "video.generate", "inputs": VIDEO}},
                                 "outputs": {"video": {"from": "clip.video"}}}), encoding="utf-8")
    env = {**os.environ, "NODEFORGE_MODELS_DIR": str(shared_models_dir), "NODEFORGE_DATA_DIR": str(tmp_path / "d")}
    done = subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", "run", str(graph), "--json", "--no-cache",
                           "--devices", "cpu", "--out", str(tmp_path / "out"), "--previews", str(tmp_path / "steps")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["status"] == "succeeded"
    files = sorted((tmp_path / "steps").iterdir())
    assert files and files[0].name == "clip-0001.jpg"  # the first step always; later ones a few per second
    with PILImage.open(files[0]) as picture:
        assert picture.size == (8, 8)
    usage = subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", "run", str(graph), "--preview-method",
                            "taesd"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert usage.returncode == 2 and "--preview-method needs --previews DIR" in usage.stderr


def test_latent_layouts() -> None:
    import torch
    from diffusers import FluxPipeline

    packed = torch.randn(2, 6 * 4, 16 * 4)  # Flux at 96x64 px, VAE factor 8: a 12x8 latent of 16 channels
    unpacked = FluxPipeline._unpack_latents(packed, 96, 64, 8)
    assert torch.equal(spatial_latents(packed, "flux", height=96, width=64, scale=8), unpacked[:1])
    assert spatial_latents(packed, "flux", height=90, width=64, scale=8) is None  # sizes that do not fit
    video = torch.randn(1, 16, 5, 4, 6)  # [B, C, F, H, W]
    assert torch.equal(spatial_latents(video, "wan"), video[:, :, 2])
    assert torch.equal(spatial_latents(video.transpose(1, 2), "cogvideox"), video[:, :, 2])
    ltx = video.permute(0, 2, 3, 4, 1).reshape(1, 5 * 4 * 6, 16)  # LTX packs [B, F*H*W, C] with patch 1
    assert torch.equal(spatial_latents(ltx, "ltx", height=128, width=192, scale=32), video[:, :, 2])


def test_projections() -> None:
    import torch

    latent = torch.randn(1, 4, 3, 5)
    factors = torch.tensor(FACTORS["sd"].factors)
    expected = ((torch.einsum("bchw,cr->brhw", latent, factors) + 1) / 2).clamp(0, 1)
    assert torch.allclose(project(latent, "sd").tensor, expected)
    odd = torch.arange(6.0).view(1, 1, 2, 3)  # one channel (tiny/flux): grey, stretched to 0..1
    picture = project(odd, "flux").tensor
    assert picture.shape == (1, 3, 2, 3) and torch.allclose(picture[0, 0], odd[0, 0] / 5)
    assert bool((picture[:, 0] == picture[:, 2]).all())
    assert taesd_name("tiny/sdxl", "sdxl") == "tiny/taesd" and taesd_name("sdxl-turbo", "sdxl") == "taesdxl"
    assert taesd_name("flux-schnell", "flux") == "taef1" and taesd_name("tiny/wan", "wan") is None
