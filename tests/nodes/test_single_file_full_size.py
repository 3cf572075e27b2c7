"""Slow (``make test-slow``): a full-size SD 1.5 checkpoint in the original layout, random weights, fp16, loads
offline with an empty Hub cache through the configuration and tokenizer that ship with nodeforge, and draws."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge.engine.session import Session
from nodeforge.nodes.models import build_resolver
from tests.nodes.image_support import generate, image_executor, run_nodes, succeeded

__all__ = ["image_executor"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sd15_checkpoint(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Path:
    """SD 1.5's real architecture (860M UNet, CLIP ViT-L/14, VAE) with seeded random weights, saved as an
    A1111-layout fp16 file: what a downloaded ``v1-5-pruned-emaonly.safetensors`` looks like to the loader."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from nodeforge.nodes.models.checkpoints.bundled import config_folder
    from nodeforge.nodes.models.checkpoints.convert import original_state_dict, save_checkpoint

    folder = config_folder("sd15", shared_models_dir)
    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_config(AutoencoderKL.load_config(str(folder / "vae"))),
        text_encoder=CLIPTextModel(CLIPTextConfig.from_pretrained(str(folder / "text_encoder"))),
        tokenizer=CLIPTokenizer.from_pretrained(str(folder / "tokenizer")),
        unet=UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(folder / "unet"))),
        scheduler=PNDMScheduler.from_pretrained(str(folder / "scheduler")),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    path = tmp_path_factory.mktemp("full") / "v1-5-random.safetensors"
    save_checkpoint(original_state_dict(pipe, "sd"), path, dtype="fp16")
    return path


def test_a_full_size_sd15_checkpoint_loads_offline_with_the_shipped_configuration(
        image_executor: Session, sd15_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nodeforge.nodes.models.checkpoints.assemble import ModelFiles, choose_config
    from nodeforge.nodes.models.checkpoints.inspection import inspect_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    checkpoint = inspect_checkpoint(sd15_checkpoint)
    assert checkpoint.family == "sd" and checkpoint.dtype == "F16"
    assert checkpoint.signature == {"in_channels": 4, "channels": 320, "context": 768}
    resolver = build_resolver()
    folder = choose_config(ModelFiles("v1-5", sd15_checkpoint, {}, {}), checkpoint,
                           lambda name: resolver.resolve(name, None).path)
    assert folder.name.startswith("sd15-")
    values = succeeded(run_nodes(image_executor, {"g": generate(str(sd15_checkpoint), steps=1)},
                                 {"image": "g.image"}))
    picture = values["image"].tensor
    assert tuple(picture.shape) == (1, 3, 64, 64) and bool(picture.isfinite().all())
    assert not (tmp_path / "empty-hub-cache").exists() or not any((tmp_path / "empty-hub-cache").iterdir())
