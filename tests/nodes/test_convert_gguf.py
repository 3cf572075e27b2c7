"""GGUF files of the tiny transformers (city96's layout) load through diffusers' GGUF loader, quantized, and
compute close to the unquantized transformer; ``nodeforge models convert`` writes each format.

Tolerances: Q8_0 stores each block of 32 weights as int8 steps of max|w|/127, an error of at most 0.4% of the
block's largest weight, so the output's relative error stays under 1% (measured 0.05%); Q4_0/Q4_1 steps are
max|w|/8 (about 6%), and the output stays under 5% (measured about 1%). The error must also be above zero: an
output identical to the unquantized one would mean nothing was quantized.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import pytest
import torch
from diffusers import GGUFQuantizationConfig
from diffusers.models.model_loading_utils import load_gguf_checkpoint
from diffusers.quantizers.gguf.utils import GGUFLinear

from nodeforge.engine.cli import main
from nodeforge.nodes.models.checkpoints.convert import ConversionError, component_state_dict, save_gguf
from nodeforge.nodes.models.checkpoints.layout_flow import transformer_from_original
from tests.nodes.convert_support import tiny

__all__ = ["tiny"]
TOLERANCE = {"Q8_0": 0.01, "Q4_0": 0.05, "Q4_1": 0.05}


def _relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    return float((out - reference).norm() / reference.norm())


def _quantized(model: Any) -> Counter[str]:
    return Counter(module.weight.quant_type.name for module in model.modules() if isinstance(module, GGUFLinear))


def _quantized_weights(state: dict[str, Any]) -> int:
    """How many diffusers weights arrive quantized (a fused q, k, v counts three times)."""
    return sum(1 for tensor in state.values() if getattr(tensor, "quant_type", None) is not None)


def _flux_inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"hidden_states": torch.randn(1, 16, 4, generator=generator),
            "encoder_hidden_states": torch.randn(1, 8, 32, generator=generator),
            "pooled_projections": torch.randn(1, 32, generator=generator), "timestep": torch.tensor([0.5]),
            "img_ids": torch.zeros(16, 3), "txt_ids": torch.zeros(8, 3)}


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "Q4_1"])
def test_flux_gguf_loads_quantized_and_close(tiny: Callable[[str], Path], tmp_path: Path, qtype: str) -> None:
    """diffusers reads the file (``load_gguf_checkpoint``) and quantizes the model (``GGUFQuantizationConfig``);
    the names go through ``transformer_from_original`` because diffusers' Flux reader assumes width 3072."""
    from diffusers import FluxTransformer2DModel

    folder = tiny("flux")
    model = FluxTransformer2DModel.from_pretrained(str(folder), subfolder="transformer")
    path = tmp_path / f"flux-{qtype}.gguf"
    types = save_gguf(component_state_dict(model), path, "flux", qtype)
    reader = gguf.GGUFReader(str(path))
    assert bytes(reader.fields["general.architecture"].parts[-1]).decode() == "flux"
    stored = {tensor.name: tensor.tensor_type.name for tensor in reader.tensors}
    assert stored == types and stored["double_blocks.0.img_attn.qkv.weight"] == qtype
    assert stored["double_blocks.0.img_attn.norm.query_norm.scale"] == "F32"       # 1-D: kept as city96 does
    assert stored["img_in.weight"] == "F32" and stored["double_blocks.0.img_attn.proj.weight"] == "F32"  # small

    state = transformer_from_original(load_gguf_checkpoint(str(path)), "flux")
    loaded = FluxTransformer2DModel.from_single_file(
        state, quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32), config=str(folder),
        subfolder="transformer")
    assert _quantized(loaded) == Counter({qtype: _quantized_weights(state)})
    with torch.no_grad():
        error = _relative_error(loaded(**_flux_inputs()).sample, model(**_flux_inputs()).sample)
    assert 0 < error < TOLERANCE[qtype]


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0"])
def test_sd3_gguf_loads_through_from_single_file(tiny: Callable[[str], Path], tmp_path: Path, qtype: str) -> None:
    from diffusers import SD3Transformer2DModel

    folder = tiny("sd3")
    model = SD3Transformer2DModel.from_pretrained(str(folder), subfolder="transformer")
    path = tmp_path / f"sd3-{qtype}.gguf"
    types = save_gguf(component_state_dict(model), path, "sd3", qtype)
    assert types["pos_embed"] == "F16"                     # (1, 9216, 32): not a matrix, so never quantized
    assert types["x_embedder.proj.weight"] == "F32"        # a 1x1 convolution of 128 values: small
    loaded = SD3Transformer2DModel.from_single_file(
        str(path), quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32), config=str(folder),
        subfolder="transformer", local_files_only=True)
    expected = _quantized_weights(transformer_from_original(load_gguf_checkpoint(str(path)), "sd3"))
    assert expected > list(types.values()).count(qtype) > 0 and _quantized(loaded) == Counter({qtype: expected})
    generator = torch.Generator().manual_seed(0)
    inputs = {"hidden_states": torch.randn(1, 4, 8, 8, generator=generator),
              "encoder_hidden_states": torch.randn(1, 8, 64, generator=generator),
              "pooled_projections": torch.randn(1, 64, generator=generator), "timestep": torch.tensor([500.0])}
    with torch.no_grad():
        error = _relative_error(loaded(**inputs).sample, model(**inputs).sample)
    assert 0 < error < TOLERANCE[qtype]


def test_wan_rows_not_a_multiple_of_the_block_stay_unquantized(tiny: Callable[[str], Path], tmp_path: Path) -> None:
    """The tiny Wan is 24 wide: a 32-value quantization block does not divide its rows, so its matrices stay F16
    (or F32 when small) as city96's script falls back, and the file still loads and computes as before."""
    from diffusers import WanTransformer3DModel

    folder = tiny("wan")
    model = WanTransformer3DModel.from_pretrained(str(folder), subfolder="transformer")
    path = tmp_path / "wan.gguf"
    types = save_gguf(component_state_dict(model), path, "wan", "Q8_0")
    assert types["time_projection.1.weight"] == "F16" and types["head.head.weight"] == "F16"   # (144, 24), (64, 24)
    assert types["blocks.0.modulation"] == "F32"                                               # city96's hiprec
    assert set(types.values()) == {"F16", "F32"}
    loaded = WanTransformer3DModel.from_single_file(
        str(path), quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32), config=str(folder),
        subfolder="transformer", local_files_only=True)
    for key, tensor in model.state_dict().items():
        assert torch.allclose(loaded.state_dict()[key].float(), tensor, rtol=2**-10, atol=2**-14), key


def test_k_quants_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="cannot write Q4_K .* llama-quantize"):
        save_gguf({"a.weight": torch.zeros(4, 256)}, tmp_path / "a.gguf", "flux", "Q4_K")
    assert not list(tmp_path.iterdir())


def _convert(data: Path, *words: str) -> int:
    return main(["models", "convert", *words, "--data-dir", str(data)])


def test_models_convert_writes_each_format(tiny: Callable[[str], Path], shared_models_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors import safe_open

    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    data = tmp_path / "data"
    checkpoint, vae, quantized = tmp_path / "sd.safetensors", tmp_path / "vae.safetensors", tmp_path / "flux.gguf"

    assert _convert(data, "tiny/sd", str(checkpoint), "--dtype", "fp16") == 0
    assert f"wrote {checkpoint}: safetensors fp16" in capsys.readouterr().out
    with safe_open(str(checkpoint), "pt") as stored:
        names = list(stored.keys())
        assert {stored.get_slice(name).get_dtype() for name in names} == {"F16"}
    assert "cond_stage_model.transformer.text_model.final_layer_norm.weight" in names

    assert _convert(data, "tiny/sd", str(vae), "--component", "vae", "--dtype", "fp8") == 0
    with safe_open(str(vae), "pt") as stored:
        assert stored.get_slice("encoder.down.0.block.0.conv1.weight").get_dtype() == "F8_E4M3"

    assert _convert(data, "tiny/flux", str(quantized), "--quant", "Q4_0") == 0
    out = capsys.readouterr().out
    assert f"wrote {quantized}: GGUF Q4_0" in out and "48 tensors" in out
    assert Counter(t.tensor_type.name for t in gguf.GGUFReader(str(quantized)).tensors)["Q4_0"] == 10

    assert _convert(data, "tiny/sd", str(tmp_path / "x.gguf"), "--quant", "Q4_K") == 1
    assert "cannot write Q4_K" in capsys.readouterr().err
    assert _convert(data, "tiny/sd", str(tmp_path / "x.safetensors"), "--component", "transformer") == 1
    assert "has no component 'transformer' (it has: " in capsys.readouterr().err
    assert _convert(data, "tiny/sd", str(tmp_path / "x.safetensors"), "--component", "scheduler") == 1
    assert "no original layout for a EulerDiscreteScheduler component" in capsys.readouterr().err
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["data", "flux.gguf", "sd.safetensors",
                                                                  "vae.safetensors"]
