"""Honest imports: a workflow of a family nodeforge does not run is refused by that family's name (never imported as
Flux), and each node that cannot be reproduced is named with its id, title and class."""

from __future__ import annotations

from typing import Any

import pytest

from nodeforge.nodes.importers import ImportFailed, import_comfy


def z_image_api(unet: str = "z_image_turbo_bf16.safetensors", clip_type: str = "lumina2") -> dict[str, Any]:
    """Comfy-Org's Z-Image Turbo template in the API format: UNETLoader + CLIPLoader (qwen_3_4b, lumina2) + ae."""
    return {
        "28": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"},
               "_meta": {"title": "Load Diffusion Model"}},
        "30": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_3_4b.safetensors", "type": clip_type,
                                                       "device": "default"}},
        "29": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "11": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["28", 0], "shift": 3}},
        "27": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["30", 0], "text": "a billboard"}},
        "33": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["27", 0]}},
        "13": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["11", 0], "positive": ["27", 0], "negative": ["33", 0],
                                                   "latent_image": ["13", 0], "seed": 5, "steps": 4, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["29", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "z"}},
    }


def test_a_z_image_workflow_is_refused_as_z_image_not_imported_as_flux() -> None:
    with pytest.raises(ImportFailed) as failed:
        import_comfy(z_image_api(), partial=True)
    text = str(failed.value)
    assert "Flux" not in text and "flux" not in text
    assert 'node 28 "Load Diffusion Model" (UNETLoader): z_image_turbo_bf16.safetensors is a Z-Image model: ' \
           "nodeforge does not run the Z-Image family" in text


@pytest.mark.parametrize(("unet", "family"), [("qwen_image_fp8_e4m3fn.safetensors", "Qwen-Image"),
                                              ("hidream_i1_dev_bf16.safetensors", "HiDream"),
                                              ("chroma-unlocked-v37.safetensors", "Chroma")])
def test_other_families_are_named_as_themselves(unet: str, family: str) -> None:
    with pytest.raises(ImportFailed, match=f"is a {family} model: nodeforge does not run the {family} family"):
        import_comfy(z_image_api(unet, clip_type="stable_diffusion"))


def test_a_text_encoder_type_of_another_family_is_named_even_for_an_unnamed_file() -> None:
    with pytest.raises(ImportFailed, match=r"node 30 \(CLIPLoader\): its text encoders \(type qwen_image\) are for "
                                           "Qwen-Image"):
        import_comfy(z_image_api("my_model.safetensors", clip_type="qwen_image"))


def test_an_unmapped_node_is_listed_with_its_title() -> None:
    workflow = z_image_api("flux1-dev.safetensors", clip_type="flux")
    workflow["12"] = {"class_type": "ImageInvert", "inputs": {"image": ["8", 0]}, "_meta": {"title": "Negate"}}
    with pytest.raises(ImportFailed) as failed:
        import_comfy(workflow)
    [item] = failed.value.unmapped
    assert str(item) == 'node 12 "Negate" (ImageInvert): no nodeforge equivalent'
    assert item.to_dict() == {"id": "12", "class_type": "ImageInvert", "reason": "no nodeforge equivalent",
                              "title": "Negate"}


@pytest.mark.parametrize(("loader", "name", "reason"), [
    ("ControlNetLoader", "t2iadapter_depth_sd14v1.pth", "is a T2I-Adapter: nodeforge runs ControlNets, not T2I"),
    ("ControlNetLoader", "coadapter-canny-sd15v1.pth", "is a T2I-Adapter"),
    ("DiffControlNetLoader", "diff_control_sd15_depth.safetensors", "is loaded as a diff ControlNet")])
def test_t2i_adapters_and_diff_controlnets_are_not_passed_off_as_controlnets(loader: str, name: str,
                                                                             reason: str) -> None:
    workflow = z_image_api("flux1-dev.safetensors", clip_type="flux")
    workflow["40"] = {"class_type": loader, "inputs": {"control_net_name": name}}
    workflow["41"] = {"class_type": "LoadImage", "inputs": {"image": "depth.png"}}
    workflow["42"] = {"class_type": "ControlNetApply", "inputs": {"conditioning": ["27", 0], "control_net": ["40", 0],
                                                                  "image": ["41", 0], "strength": 1.0}}
    workflow["3"]["inputs"]["positive"] = ["42", 0]
    with pytest.raises(ImportFailed, match=f"node 40 \\({loader}\\): {name} {reason}"):
        import_comfy(workflow)
