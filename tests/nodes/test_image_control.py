"""ControlNets, IP-Adapters and inpainting on the tiny models: real diffusers pipelines, exact pixel comparisons."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.session import RunResult, Session
from nodeforge.engine.values import Image
from tests.nodes.image_support import image_executor, pixels

__all__ = ["image_executor"]


@pytest.fixture(scope="module")
def picture() -> Image:
    import torch

    return Image(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))


@pytest.fixture(scope="module")
def tiny(image_executor: Session) -> Path:
    """The tiny models folder, with the control models built (the session's models dir)."""
    from nodeforge.nodes.models import build_resolver

    resolver = build_resolver()
    for name in ("tiny/controlnet", "tiny/ip_adapter"):
        resolver.resolve(name, None)
    return resolver.models_dir(None) / "tiny"


def run(session: Session, nodes: dict[str, Any], picture: Image, *, references: Image | None = None,
        **outputs: str) -> RunResult:
    """Run ``nodes`` with the graph input ``picture`` (and ``references`` when given)."""
    given = {"picture": picture, **({"references": references} if references is not None else {})}
    document = {"inputs": {name: {"type": "image"} for name in given}, "nodes": nodes,
                "outputs": {name: {"from": source} for name, source in (outputs or {"image": "g.image"}).items()}}
    return session.run(parse_document(document), given)


def values(result: RunResult) -> dict[str, Any]:
    assert result.record.status == "succeeded", result.record.error
    return result.values


def generate(model: str = "tiny/sd", controls: int = 0, **inputs: Any) -> dict[str, Any]:
    links = [{"from": f"c{i}.control"} for i in range(controls)]
    return {"type": "image.generate", "inputs": {"prompt": "a red fox", "model": model, "width": 64, "height": 64,
                                                 "steps": 4, "guidance_scale": 4.0, "seed": 7, "controls": links,
                                                 **inputs}}


def controlnet(model: str = "tiny/controlnet", **inputs: Any) -> dict[str, Any]:
    return {"type": "image.controlnet", "inputs": {"image": {"input": "picture"}, "model": model, **inputs}}


def ip_adapter(model: str = "tiny/ip_adapter", image: Any = None, **inputs: Any) -> dict[str, Any]:
    return {"type": "image.ip_adapter", "inputs": {"image": image or {"input": "picture"}, "model": model,
                                                   **inputs}}


@pytest.fixture(scope="module")
def plain(image_executor: Session, picture: Image) -> Any:
    """tiny/sd's picture with no control: what weight 0 and removed adapters must give back exactly."""
    return pixels(values(run(image_executor, {"g": generate()}, picture))["image"])


def test_controlnet_changes_the_picture_and_weight_zero_equals_none(image_executor: Session, picture: Image,
                                                                     plain: Any) -> None:
    steered = pixels(values(run(image_executor, {"c0": controlnet(), "g": generate(controls=1)}, picture))["image"])
    off = pixels(values(run(image_executor, {"c0": controlnet(weight=0.0), "g": generate(controls=1)},
                            picture))["image"])
    assert (steered.int() - plain.int()).abs().float().mean() > 5
    assert bool((off == plain).all())


def test_start_and_end_choose_the_steps_the_controlnet_acts_in(image_executor: Session, picture: Image,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import ControlNetModel

    scales: list[float] = []
    forward = ControlNetModel.forward

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        scales.append(float(kwargs["conditioning_scale"]))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(ControlNetModel, "forward", spy)
    late = pixels(values(run(image_executor, {"c0": controlnet(start=0.5, weight=0.8), "g": generate(controls=1)},
                             picture))["image"])
    assert scales == [0.0, 0.0, 0.8, 0.8]
    scales.clear()
    early = pixels(values(run(image_executor, {"c0": controlnet(end=0.5, weight=0.8), "g": generate(controls=1)},
                              picture))["image"])
    assert scales == [0.8, 0.8, 0.0, 0.0]
    assert not bool((late == early).all())


def test_several_controlnets_at_once_each_with_its_weight(image_executor: Session, picture: Image) -> None:
    one = pixels(values(run(image_executor, {"c0": controlnet(), "g": generate(controls=1)}, picture))["image"])
    both = pixels(values(run(image_executor, {"c0": controlnet(), "c1": controlnet(weight=0.5, start=0.25),
                                              "g": generate(controls=2)}, picture))["image"])
    second_off = pixels(values(run(image_executor, {"c0": controlnet(), "c1": controlnet(weight=0.0),
                                                    "g": generate(controls=2)}, picture))["image"])
    assert not bool((both == one).all())
    assert bool((second_off == one).all())


@pytest.mark.parametrize(("model", "net"), [("tiny/sdxl", "tiny/controlnet-sdxl"),
                                            ("tiny/flux", "tiny/controlnet-flux")])
def test_controlnets_of_other_families(image_executor: Session, picture: Image, model: str, net: str) -> None:
    without = pixels(values(run(image_executor, {"g": generate(model)}, picture))["image"])
    for task in ("image.generate", "image.transform"):
        node = generate(model, controls=1)
        if task == "image.transform":
            node = {"type": task, "inputs": {**node["inputs"], "image": {"input": "picture"}}}
            del node["inputs"]["width"], node["inputs"]["height"]
        steered = pixels(values(run(image_executor, {"c0": controlnet(net), "g": node}, picture))["image"])
        assert steered.shape == without.shape
        assert not bool((steered == without).all())


def test_controlnet_union_takes_a_mode_per_picture(image_executor: Session, picture: Image) -> None:
    nodes = {"c0": controlnet("tiny/controlnet-union", mode="canny"), "g": generate("tiny/sdxl", controls=1)}
    image = values(run(image_executor, nodes, picture))["image"]
    assert (image.width, image.height) == (64, 64)
    with pytest.raises(GraphValidationError) as caught:
        run(image_executor, {"c0": controlnet("tiny/controlnet-union"), "g": generate("tiny/sdxl", controls=1)},
            picture)
    assert [(i.node, i.input) for i in caught.value.issues] == [("c0", "mode")]
    assert "canny" in caught.value.issues[0].message


def test_a_control_for_another_family_is_a_validation_issue_naming_both(image_executor: Session,
                                                                        picture: Image) -> None:
    nodes = {"c0": controlnet("tiny/controlnet"), "c1": ip_adapter(), "g": generate("tiny/sdxl", controls=2)}
    with pytest.raises(GraphValidationError) as caught:
        run(image_executor, nodes, picture)
    issues = [(i.node, i.input, i.message) for i in caught.value.issues]
    assert [(node, where) for node, where, _ in issues] == [("g", "controls"), ("g", "controls")]
    assert "ControlNet 'tiny/controlnet' is for sd models, but model 'tiny/sdxl' is a sdxl model" in issues[0][2]
    assert "IP-Adapter 'tiny/ip_adapter' is for sd models" in issues[1][2]


def test_ip_adapter_steers_and_is_removed_after_the_node(image_executor: Session, picture: Image,
                                                         plain: Any) -> None:
    steered = pixels(values(run(image_executor, {"c0": ip_adapter(weight=1.0), "g": generate(controls=1)},
                                picture))["image"])
    after = pixels(values(run(image_executor, {"g": generate()}, picture))["image"])
    assert (steered.int() - plain.int()).abs().float().mean() > 5
    assert bool((after == plain).all())


def test_ip_adapter_reads_every_reference_picture(image_executor: Session, picture: Image) -> None:
    import torch

    nodes = {"c0": ip_adapter(image={"input": "references"}, weight=1.0), "g": generate(controls=1)}
    one = pixels(values(run(image_executor, nodes, picture, references=picture))["image"])
    pair = Image(torch.cat([picture.tensor, picture.tensor.flip(-1)]))
    two = pixels(values(run(image_executor, nodes, picture, references=pair))["image"])
    assert not bool((one == two).all())


def test_ip_adapter_without_its_encoder_is_an_error_on_the_node(image_executor: Session, picture: Image,
                                                                tmp_path: Path, tiny: Path) -> None:
    weights = tmp_path / "ip-adapter_sd15.safetensors"
    shutil.copy(tiny / "ip_adapter" / "models" / "ip-adapter_sd15.safetensors", weights)
    result = run(image_executor, {"c0": ip_adapter(str(weights)), "g": generate(controls=1)}, picture)
    failure = result.record.nodes["c0"]
    assert failure.status == "failed"
    assert "has no image encoder" in (failure.error or "") and "image_encoder" in (failure.error or "")
    assert result.record.nodes["g"].status == "skipped"


def test_a_controlnet_that_does_not_load_leaves_nothing_resident(image_executor: Session, picture: Image,
                                                                 tmp_path: Path, plain: Any) -> None:
    broken = tmp_path / "broken-controlnet"
    broken.mkdir()
    (broken / "config.json").write_text('{"_class_name": "ControlNetModel"}', encoding="utf-8")
    (broken / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    result = run(image_executor, {"c0": controlnet(str(broken)), "g": generate(controls=1)}, picture)
    assert result.record.status == "failed"
    assert "could not be loaded" in (result.record.nodes["g"].error or "")
    resident = [key for device in image_executor.models.snapshot().values() for key in device["models"]]
    assert not [key for key in resident if "broken-controlnet" in key]
    assert bool((pixels(values(run(image_executor, {"g": generate()}, picture))["image"]) == plain).all())


@pytest.mark.parametrize("model", ["tiny/sd", "tiny/sd-inpainting", "tiny/sdxl", "tiny/flux"])
def test_inpainting_keeps_every_unmasked_pixel(image_executor: Session, picture: Image, model: str) -> None:
    """The middle 32x32 square is repainted (a padded 32 px picture's mask, inverted); the border is kept."""
    nodes = {"m": {"type": "mask.invert", "inputs": {"mask": {"from": "square.mask"}}},
             "square": {"type": "image.pad", "inputs": {"image": {"from": "inner.image"}, "left": 16, "top": 16,
                                                        "right": 16, "bottom": 16}},
             "inner": {"type": "image.resize", "inputs": {"image": {"input": "picture"}, "width": 32,
                                                          "height": 32}},
             "g": {"type": "image.inpaint", "inputs": {"image": {"input": "picture"}, "mask": {"from": "m.mask"},
                                                       "prompt": "a fox", "model": model, "steps": 2, "seed": 3}}}
    out = values(run(image_executor, nodes, picture, image="g.image", mask="m.mask"))
    keep = (out["mask"].tensor == 0).expand_as(picture.tensor)
    assert bool(keep.any()) and bool((~keep).any())
    assert bool((out["image"].tensor[keep] == picture.tensor[keep]).all())
    assert float((out["image"].tensor - picture.tensor).abs()[~keep].mean()) > 0.02


def test_inpainting_takes_controls(image_executor: Session, picture: Image) -> None:
    base = {"m": {"type": "mask.from_image", "inputs": {"image": {"input": "picture"}, "channel": "green"}},
            "g": {"type": "image.inpaint", "inputs": {"image": {"input": "picture"}, "mask": {"from": "m.mask"},
                                                      "prompt": "a fox", "model": "tiny/sd", "steps": 2, "seed": 3}}}
    without = pixels(values(run(image_executor, base, picture))["image"])
    base["g"]["inputs"]["controls"] = [{"from": "c0.control"}]
    steered = pixels(values(run(image_executor, {**base, "c0": controlnet()}, picture))["image"])
    assert not bool((steered == without).all())


def test_outpainting_extends_the_canvas_and_keeps_the_picture(image_executor: Session, picture: Image) -> None:
    nodes = {"pad": {"type": "image.pad", "inputs": {"image": {"input": "picture"}, "left": 32, "right": 32}},
             "g": {"type": "image.inpaint", "inputs": {"image": {"from": "pad.image"}, "mask": {"from": "pad.mask"},
                                                       "prompt": "a fox", "model": "tiny/sd", "steps": 2, "seed": 3}}}
    out = values(run(image_executor, nodes, picture, image="g.image", mask="pad.mask"))
    image, mask = out["image"].tensor, out["mask"].tensor
    assert tuple(image.shape) == (1, 3, 64, 128) and tuple(mask.shape) == (1, 1, 64, 128)
    assert bool((mask[..., 32:96] == 0).all()) and bool((mask[..., :32] == 1).all())
    assert bool((image[..., 32:96] == picture.tensor).all())


def test_a_mask_of_another_size_is_an_error_naming_the_input(image_executor: Session, picture: Image) -> None:
    nodes = {"pad": {"type": "image.pad", "inputs": {"image": {"input": "picture"}, "left": 8}},
             "g": {"type": "image.inpaint", "inputs": {"image": {"input": "picture"}, "mask": {"from": "pad.mask"},
                                                       "prompt": "a fox", "model": "tiny/sd", "steps": 2}}}
    result = run(image_executor, nodes, picture)
    failure = result.record.nodes["g"]
    assert failure.status == "failed"
    assert "input 'mask'" in (failure.error or "") and "72x64" in (failure.error or "") and "64x64" in (
        failure.error or "")


def test_controlnet_and_ip_adapter_files_in_the_layouts_users_download(image_executor: Session, picture: Image,
                                                                      tmp_path: Path, tiny: Path) -> None:
    """A ControlNet weights file beside its config.json; an IP-Adapter .bin (torch state dict of image_proj and
    ip_adapter, as h94 ships them) with its image_encoder folder beside it."""
    import torch
    from safetensors.torch import load_file

    by_alias = pixels(values(run(image_executor, {"c0": controlnet(), "c1": ip_adapter(weight=1.0),
                                                  "g": generate(controls=2)}, picture))["image"])
    net = tmp_path / "control_tiny_canny"
    shutil.copytree(tiny / "controlnet", net)
    adapters = tmp_path / "ip"
    shutil.copytree(tiny / "ip_adapter" / "models" / "image_encoder", adapters / "image_encoder")
    flat = load_file(tiny / "ip_adapter" / "models" / "ip-adapter_sd15.safetensors")
    nested = {part: {key.removeprefix(f"{part}."): value for key, value in flat.items() if key.startswith(part)}
              for part in ("image_proj", "ip_adapter")}
    torch.save(nested, adapters / "ip-adapter_sd15.bin")
    nodes = {"c0": controlnet(str(net / "diffusion_pytorch_model.safetensors")),
             "c1": ip_adapter(str(adapters / "ip-adapter_sd15.bin"), weight=1.0), "g": generate(controls=2)}
    from_files = pixels(values(run(image_executor, nodes, picture))["image"])
    assert bool((from_files == by_alias).all())


def test_an_ip_adapter_that_does_not_fit_is_removed_again(image_executor: Session, picture: Image, tmp_path: Path,
                                                          tiny: Path, plain: Any) -> None:
    """Weights for other layer widths fail while loading into the UNet: the error names the adapter and the model,
    and the next run sees the base model, not a half-loaded adapter."""
    from safetensors.torch import load_file, save_file

    files = tiny / "ip_adapter" / "models"
    folder = tmp_path / "wrong"
    shutil.copytree(files / "image_encoder", folder / "image_encoder")
    tensors = load_file(files / "ip-adapter_sd15.safetensors")
    tensors = {key: (value[:, :5].contiguous() if "to_k_ip" in key else value) for key, value in tensors.items()}
    save_file(tensors, folder / "ip-adapter_wrong.safetensors")
    result = run(image_executor, {"c0": ip_adapter(str(folder / "ip-adapter_wrong.safetensors")),
                                  "g": generate(controls=1)}, picture)
    error = result.record.nodes["g"].error or ""
    assert result.record.status == "failed" and "does not fit model 'tiny/sd'" in error and "controls" in error
    assert bool((pixels(values(run(image_executor, {"g": generate()}, picture))["image"]) == plain).all())
