"""Single-file checkpoints in the original (A1111/ComfyUI) layout and GGUF transformers, loaded offline with the
configurations that ship with nodeforge: the tiny pipelines written out as users' files give the same pixels as
their diffusers folders, fp16/bf16/fp8 files load upcast, and files that fit nothing say why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.session import RunResult, Session
from nodeforge.nodes.models import build_resolver
from tests.nodes.image_support import generate, image_executor, psnr, run_nodes, succeeded

__all__ = ["image_executor"]

FAMILIES = {"sd": "tiny/sd", "sdxl": "tiny/sdxl", "sd3": "tiny/sd3", "flux": "tiny/flux"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_pipeline(name: str) -> Any:
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(str(build_resolver().resolve(name, None).path))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each tiny pipeline as one original-layout safetensors file (Flux: its transformer, VAE and encoders)."""
    from nodeforge.nodes.models.checkpoints.convert import original_state_dict, save_checkpoint

    folder = tmp_path_factory.mktemp("checkpoints")
    files = {}
    for family, name in FAMILIES.items():
        files[family] = folder / f"{family}.safetensors"
        save_checkpoint(original_state_dict(tiny_pipeline(name), family), files[family])
    return files


def same_picture(a: Any, b: Any) -> bool:
    """Equal up to float32 rounding: split tensors land at other memory alignments than a folder's mapped file,
    and the CPU kernels then sum in another order (differences of a few 1e-7)."""
    return float((a - b).abs().max()) < 1e-5


def image(session: Session, model: str, **inputs: Any) -> Any:
    result = run_nodes(session, {"g": generate(model, **inputs)}, {"image": "g.image"})
    return succeeded(result)["image"]


def node_error(result: RunResult) -> str:
    assert result.record.status == "failed"
    return result.record.nodes["g"].error or ""


@pytest.mark.parametrize("family", list(FAMILIES))
def test_an_original_layout_file_gives_the_pixels_of_the_diffusers_folder(image_executor: Session,
                                                                          checkpoints: dict[str, Path],
                                                                          family: str) -> None:
    guidance = {"guidance_scale": 1.0} if family == "flux" else {}
    folder = image(image_executor, FAMILIES[family], **guidance).tensor
    single = image(image_executor, str(checkpoints[family]), **guidance).tensor
    assert single.shape == folder.shape == (1, 3, 64, 64)
    assert same_picture(single, folder)


@pytest.mark.parametrize(("dtype", "floor"), [("fp16", 40.0), ("bf16", 25.0), ("fp8", 12.0)])
def test_half_and_fp8_files_load_upcast_and_stay_close(image_executor: Session, tmp_path: Path,
                                                       dtype: str, floor: float) -> None:
    from safetensors import safe_open

    from nodeforge.nodes.models.checkpoints.convert import original_state_dict, save_checkpoint

    path = tmp_path / f"sd-{dtype}.safetensors"
    save_checkpoint(original_state_dict(tiny_pipeline("tiny/sd"), "sd"), path, dtype=dtype)
    stored = {"fp16": "F16", "bf16": "BF16", "fp8": "F8_E4M3"}[dtype]
    with safe_open(str(path), framework="pt") as handle:
        assert str(handle.get_slice("model.diffusion_model.input_blocks.0.0.weight").get_dtype()) == stored
    reference = image(image_executor, "tiny/sd")
    assert psnr(image(image_executor, str(path)).tensor, reference.tensor) > floor


def test_the_configuration_is_picked_by_sizes_and_a_file_that_fits_none_says_what_was_tried(
        image_executor: Session, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    odd = tmp_path / "odd.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(48, 4, 3, 3),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(48, 96),
               "first_stage_model.encoder.conv_in.weight": torch.zeros(8, 3, 3, 3)}, str(odd))
    error = node_error(run_nodes(image_executor, {"g": generate(str(odd))}, {"image": "g.image"}))
    assert "input 'model'" in error and "in_channels 4, channels 48, context 96" in error
    assert "sd15: in_channels 4, channels 320, context 768" in error and "tiny/sd:" in error
    assert 'config = "..."' in error


def test_a_bare_transformer_names_the_components_it_lacks(image_executor: Session, tmp_path: Path) -> None:
    from nodeforge.nodes.models.checkpoints.convert import component_state_dict, save_checkpoint

    bare = tmp_path / "flux1-dev.safetensors"
    save_checkpoint(component_state_dict(tiny_pipeline("tiny/flux").transformer), bare)
    error = node_error(run_nodes(image_executor, {"g": generate(str(bare))}, {"image": "g.image"}))
    assert "input 'model'" in error and "holds no vae, text_encoder, text_encoder_2" in error


@pytest.fixture(scope="module")
def flux_parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny/flux as a ComfyUI user keeps it: GGUF transformers, clip_l and t5xxl files, ae.safetensors."""
    from nodeforge.nodes.models.checkpoints.convert import component_state_dict, save_checkpoint
    from nodeforge.nodes.models.checkpoints.gguf_file import save_gguf

    pipe = tiny_pipeline("tiny/flux")
    folder = tmp_path_factory.mktemp("flux-parts")
    transformer = component_state_dict(pipe.transformer)
    parts = {"clip_l": folder / "clip_l.safetensors", "t5xxl": folder / "t5xxl_fp16.safetensors",
             "ae": folder / "ae.safetensors", "q8": folder / "flux-Q8_0.gguf", "q4": folder / "flux-Q4_0.gguf",
             "full": folder / "flux.safetensors"}
    save_checkpoint(component_state_dict(pipe.text_encoder), parts["clip_l"])
    save_checkpoint(component_state_dict(pipe.text_encoder_2), parts["t5xxl"])
    save_checkpoint(component_state_dict(pipe.vae), parts["ae"])
    save_checkpoint(transformer, parts["full"])
    save_gguf(transformer, parts["q8"], "flux", "Q8_0")
    save_gguf(transformer, parts["q4"], "flux", "Q4_0")
    return parts


def flux_alias(session: Session, name: str, parts: dict[str, Path], transformer: str) -> None:
    assert session.data_dir is not None
    (Path(session.data_dir) / "models.toml").write_text(f"""
[aliases.{name}]
family = "flux"
transformer = "{parts[transformer]}"
text_encoder = "{parts['clip_l']}"
text_encoder_2 = "{parts['t5xxl']}"
vae = "{parts['ae']}"
""", encoding="utf-8")


def test_a_model_of_comfyui_component_files_equals_the_whole_model(image_executor: Session,
                                                                   flux_parts: dict[str, Path]) -> None:
    flux_alias(image_executor, "my-flux", flux_parts, "full")
    whole = image(image_executor, "tiny/flux", guidance_scale=1.0).tensor
    assert same_picture(image(image_executor, "my-flux", guidance_scale=1.0).tensor, whole)


@pytest.mark.parametrize(("quant", "floor"), [("q8", 30.0), ("q4", 15.0)])
def test_gguf_transformers_load_quantized_and_stay_close(image_executor: Session, flux_parts: dict[str, Path],
                                                         quant: str, floor: float) -> None:
    flux_alias(image_executor, f"flux-{quant}", flux_parts, quant)
    whole = image(image_executor, "tiny/flux", guidance_scale=1.0)
    quantized = image(image_executor, f"flux-{quant}", guidance_scale=1.0)
    assert quantized.tensor.shape == whole.tensor.shape
    assert psnr(quantized.tensor, whole.tensor) > floor


def test_a_component_of_another_model_is_named(image_executor: Session, flux_parts: dict[str, Path]) -> None:
    swapped = {**flux_parts, "t5xxl": flux_parts["clip_l"]}
    flux_alias(image_executor, "wrong-flux", swapped, "full")
    error = node_error(run_nodes(image_executor, {"g": generate("wrong-flux")}, {"image": "g.image"}))
    assert "input 'model'" in error and "component text_encoder_2 is not a T5EncoderModel" in error


def test_a_wan_gguf_transformer_with_its_component_files_makes_video(image_executor: Session,
                                                                     tmp_path: Path) -> None:
    """Wan as ComfyUI users keep it: a GGUF transformer in Wan's own names, the UMT5 encoder and VAE beside it.
    (tiny/wan is 24 wide, which 32-value blocks do not divide, so its matrices are stored F16: the reader is what is
    tested, and F16 weights keep the frames within 30 dB of the fp32 folder's.)"""
    from nodeforge.nodes.models.checkpoints.convert import original_state_dict
    from nodeforge.nodes.models.checkpoints.gguf_file import save_gguf

    tiny = build_resolver().resolve("tiny/wan", None).path
    gguf = tmp_path / "wan2.1-t2v-Q8_0.gguf"
    save_gguf(original_state_dict(tiny_pipeline("tiny/wan"), "wan"), gguf, "wan", "Q8_0")
    assert image_executor.data_dir is not None
    (Path(image_executor.data_dir) / "models.toml").write_text(f"""
[aliases.my-wan]
family = "wan"
architecture = "tiny/wan"
transformer = "{gguf}"
text_encoder = "{tiny / 'text_encoder'}"
vae = "{tiny / 'vae'}"
""", encoding="utf-8")
    inputs = {"prompt": "a red fox running in the snow", "frames": 9, "width": 64, "height": 64, "steps": 2,
              "seed": 3}
    videos = [succeeded(run_nodes(image_executor, {"v": {"type": "video.generate", "inputs": {**inputs,
                                                                                                "model": model}}},
                                  {"video": "v.video"}))["video"] for model in ("tiny/wan", "my-wan")]
    assert videos[1].frames.shape == videos[0].frames.shape == (9, 3, 64, 64)
    assert psnr(videos[1].frames, videos[0].frames) > 30.0


def test_an_sd3_gguf_transformer_loads_quantized_beside_the_model_encoders(image_executor: Session,
                                                                           tmp_path: Path) -> None:
    from nodeforge.nodes.models.checkpoints.convert import component_state_dict
    from nodeforge.nodes.models.checkpoints.gguf_file import save_gguf

    tiny = build_resolver().resolve("tiny/sd3", None).path
    gguf = tmp_path / "sd3.5-medium-Q8_0.gguf"
    stored = save_gguf(component_state_dict(tiny_pipeline("tiny/sd3").transformer), gguf, "sd3", "Q8_0")
    assert "Q8_0" in stored.values()
    assert image_executor.data_dir is not None
    (Path(image_executor.data_dir) / "models.toml").write_text(f"""
[aliases.my-sd3]
family = "sd3"
architecture = "tiny/sd3"
transformer = "{gguf}"
text_encoder = "{tiny / 'text_encoder'}"
text_encoder_2 = "{tiny / 'text_encoder_2'}"
text_encoder_3 = "{tiny / 'text_encoder_3'}"
vae = "{tiny / 'vae'}"
""", encoding="utf-8")
    whole = image(image_executor, "tiny/sd3")
    quantized = image(image_executor, "my-sd3")
    assert quantized.tensor.shape == whole.tensor.shape
    assert 30.0 < psnr(quantized.tensor, whole.tensor) < 200.0
