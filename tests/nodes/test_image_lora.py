"""LoRAs on image.generate: diffusers and kohya formats change the output, weights scale it, and they are removed
after the run, also when one does not fit the model, so the next node sees the base model."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodeforge.engine.session import Session
from nodeforge.nodes.models import build_resolver
from tests.nodes.image_support import generate, image_executor, pixels, run_nodes, succeeded

__all__ = ["image_executor"]


def _diffusers_lora(model: str, target: Path, seed: int) -> Path:
    """A random (non-zero) LoRA on the attention projections of a tiny pipeline's UNet, saved as diffusers does."""
    import torch
    from diffusers import DiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = DiffusionPipeline.from_pretrained(str(build_resolver().resolve(model, None).path))
    torch.manual_seed(seed)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                     target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    target.mkdir(parents=True)
    type(pipe).save_lora_weights(str(target), unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                 safe_serialization=True)
    return target / "pytorch_lora_weights.safetensors"


def _kohya_lora(target: Path) -> Path:
    """A kohya-format file: ``lora_unet_<module path>.lora_down/.lora_up/.alpha`` for the low-res attention."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(5)
    tensors = {}
    for name, (out_dim, in_dim) in {"attn1_to_q": (64, 64), "attn1_to_v": (64, 64), "attn2_to_k": (64, 32)}.items():
        key = f"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_{name}"
        tensors[f"{key}.lora_down.weight"] = torch.randn(4, in_dim, generator=generator)
        tensors[f"{key}.lora_up.weight"] = torch.randn(out_dim, 4, generator=generator)
        tensors[f"{key}.alpha"] = torch.tensor(4.0)
    save_file(tensors, str(target))
    return target


@pytest.fixture(scope="module")
def loras(image_executor: Session, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loras")
    return {"style": _diffusers_lora("tiny/sd", folder / "style", 1), "xl": _diffusers_lora("tiny/sdxl",
                                                                                            folder / "xl", 2),
            "kohya": _kohya_lora(folder / "kohya.safetensors")}


def _image(session: Session, **inputs: object) -> object:
    return pixels(succeeded(run_nodes(session, {"g": generate(**inputs)}))["g.image"])


def test_lora_changes_the_output_scales_with_weight_and_is_removed(image_executor: Session,
                                                                   loras: dict[str, Path]) -> None:
    base = _image(image_executor)
    styled = _image(image_executor, loras=[{"model": str(loras["style"]), "weight": 1.0}])
    half = _image(image_executor, loras=[{"model": str(loras["style"]), "weight": 0.5}])
    off = _image(image_executor, loras=[{"model": str(loras["style"]), "weight": 0.0}])
    assert not styled.equal(base) and not half.equal(base) and not half.equal(styled)
    assert (off.int() - base.int()).abs().max() <= 1
    assert _image(image_executor).equal(base)
    folder = _image(image_executor, loras=[{"model": str(loras["style"].parent)}])
    assert folder.equal(styled)


def test_kohya_format_lora_applies_and_is_removed(image_executor: Session, loras: dict[str, Path]) -> None:
    base = _image(image_executor)
    assert not _image(image_executor, loras=[{"model": str(loras["kohya"]), "weight": 0.8}]).equal(base)
    assert _image(image_executor).equal(base)


def test_lora_for_another_model_fails_clearly_and_leaves_the_base_model(image_executor: Session,
                                                                        loras: dict[str, Path]) -> None:
    base = _image(image_executor)
    result = run_nodes(image_executor, {"g": generate(loras=[{"model": str(loras["style"])},
                                                             {"model": str(loras["xl"])}])})
    error = result.record.nodes["g"].error
    assert error.startswith(f"node 'g' (image.generate), input 'loras': loras[1]: LoRA '{loras['xl']}' does not "
                            "fit model 'tiny/sd' (sd): ")
    assert error.endswith("a LoRA must be trained for the same base model (diffusers or kohya format)")
    assert _image(image_executor).equal(base)
    missing = run_nodes(image_executor, {"g": generate(loras=[{"model": "./no-such-lora.safetensors"}])})
    assert missing.record.nodes["g"].error == ("node 'g' (image.generate), input 'loras': loras[0]: model file or "
                                               "folder './no-such-lora.safetensors' does not exist")
    assert _image(image_executor).equal(base)


def test_cancelling_mid_run_removes_the_lora_too(image_executor: Session, loras: dict[str, Path]) -> None:
    import threading

    from nodeforge.engine.document import parse_document

    base = _image(image_executor, steps=3)
    cancel = threading.Event()

    def listen(event: object) -> None:
        if getattr(event, "kind", "") == "node.progress":
            cancel.set()

    document = parse_document({"nodes": {"g": generate(steps=3, loras=[{"model": str(loras["style"])}])}})
    result = image_executor.run(document, listener=listen, cancel=cancel)
    assert result.record.status == "cancelled" and result.record.nodes["g"].status == "cancelled"
    assert _image(image_executor, steps=3).equal(base)
