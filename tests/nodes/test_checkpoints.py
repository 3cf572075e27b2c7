"""Reading checkpoints without loading them: SD 2.x epsilon or v-prediction from the file (its marker, ComfyUI's
norm-spread test, the alias's word), and fp8 files upcast, ComfyUI's scaled fp8 multiplied by its scales."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge.nodes.models import build_resolver
from nodeforge.nodes.models.checkpoints.assemble import V_PROBE, ModelFiles, choose_config
from nodeforge.nodes.models.checkpoints.components import upcast_state_dict
from nodeforge.nodes.models.checkpoints.inspection import inspect_checkpoint


def sd2_file(folder: Path, spread: float, marker: bool = False) -> Path:
    """Only the tensors the reader looks at, sized as SD 2.x's UNet (320 channels, 1024-wide text context)."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    tensors = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(320, 1024),
               V_PROBE: torch.randn(640, generator=generator) * spread}
    if marker:
        tensors["v_pred"] = torch.zeros(0)
    path = folder / f"sd2-{spread}-{marker}.safetensors"
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize(("spread", "marker", "settings", "expected"), [
    (0.2, False, {}, "sd2-v"),
    (0.01, False, {}, "sd2-base"),
    (0.01, True, {}, "sd2-v"),
    (0.2, False, {"prediction": "epsilon"}, "sd2-base"),
    (0.01, False, {"prediction": "v"}, "sd2-v"),
])
def test_sd2_prediction_picks_the_configuration(tmp_path: Path, spread: float, marker: bool,
                                                settings: dict[str, str], expected: str) -> None:
    path = sd2_file(tmp_path, spread, marker)
    checkpoint = inspect_checkpoint(path)
    assert checkpoint.family == "sd" and checkpoint.signature == {"in_channels": 4, "channels": 320, "context": 1024}
    resolver = build_resolver()
    folder = choose_config(ModelFiles("sd2", path, {}, settings), checkpoint,
                           lambda name: resolver.resolve(name, None).path)
    assert folder.name.startswith(f"{expected}-")


def test_fp8_tensors_are_upcast_and_scaled_fp8_multiplied_by_its_scales() -> None:
    import torch

    weight = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    state = {"a.weight": weight.to(torch.float8_e4m3fn), "a.scale_weight": torch.tensor(3.0),
             "b.weight": weight.to(torch.float8_e4m3fn), "b.bias": torch.ones(2), "scaled_fp8": torch.zeros(0)}
    out = upcast_state_dict(state, torch.float32)
    assert set(out) == {"a.weight", "b.weight", "b.bias"}
    assert out["a.weight"].dtype == torch.float32 and torch.equal(out["a.weight"], weight * 3)
    assert torch.equal(out["b.weight"], weight) and torch.equal(out["b.bias"], torch.ones(2))
    plain = {"c.weight": weight}
    assert upcast_state_dict(plain, torch.float32) is plain
