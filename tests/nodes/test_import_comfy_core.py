"""Core ComfyUI nodes that map onto nodeforge's: Flux Fill's InpaintModelConditioning + DifferentialDiffusion onto
``image.inpaint`` (the approximation noted), ImageToMask onto ``mask.from_image``, the SD Turbo and AlignYourSteps
schedulers as their sigma schedules, and city96's GGUF loaders as bare model files."""

from __future__ import annotations

from typing import Any

import nodeforge.engine as nf
from nodeforge.engine.document import parse_document
from nodeforge.nodes.importers import import_comfy


def flux_fill(mask_from: str = "LoadImage") -> dict[str, Any]:
    """ComfyUI_examples' flux_fill_inpaint_example in the API format (UNETLoader + DualCLIPLoader + FluxGuidance)."""
    workflow: dict[str, Any] = {
        "31": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-fill-dev.safetensors",
                                                      "weight_dtype": "default"}},
        "34": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors", "clip_name2":
                                                          "t5xxl_fp16.safetensors", "type": "flux"}},
        "32": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "39": {"class_type": "DifferentialDiffusion", "inputs": {"model": ["31", 0]}},
        "23": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["34", 0], "text": "anime girl with a hat"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["34", 0], "text": ""}},
        "26": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["23", 0], "guidance": 30}},
        "17": {"class_type": "LoadImage", "inputs": {"image": "yosemite_inpaint_example.png", "upload": "image"}},
        "38": {"class_type": "InpaintModelConditioning", "inputs": {"positive": ["26", 0], "negative": ["7", 0],
                                                                    "vae": ["32", 0], "pixels": ["17", 0],
                                                                    "mask": ["17", 1], "noise_mask": False}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["39", 0], "positive": ["38", 0], "negative": ["38", 1],
                                                   "latent_image": ["38", 2], "seed": 656821733471329, "steps": 20,
                                                   "cfg": 1, "sampler_name": "euler", "scheduler": "normal",
                                                   "denoise": 1}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["32", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"}},
    }
    if mask_from == "ImageToMask":
        workflow["40"] = {"class_type": "ImageToMask", "inputs": {"image": ["17", 0], "channel": "alpha"}}
        workflow["38"]["inputs"]["mask"] = ["40", 0]
    return workflow


def test_flux_fill_inpaints_with_the_fill_model_and_names_the_approximation() -> None:
    result = import_comfy(flux_fill())
    nodes = result.document["nodes"]
    painted = nodes["inpaint_3"]["inputs"]
    assert painted["image"] == {"from": "load_17.image"} and painted["mask"] == {"from": "mask_17.mask"}
    assert painted["guidance_scale"] == 30.0 and painted["strength"] == 1.0
    assert result.document["inputs"]["model"]["default"] == "flux1-fill-dev.safetensors"
    assert any("node 39 (DifferentialDiffusion): the mask's soft edges" in warning for warning in result.warnings)
    assert nf.validate(parse_document(result.document)) == []


def test_image_to_mask_reads_alpha_as_comfyui_does() -> None:
    nodes = import_comfy(flux_fill("ImageToMask")).document["nodes"]
    assert nodes["mask_40"]["inputs"] == {"image": {"from": "load_17.image"}, "channel": "alpha"}
    assert nodes["invert_40"]["inputs"] == {"mask": {"from": "mask_40.mask"}}  # ComfyUI: alpha; nodeforge: 1 - alpha
    assert nodes["inpaint_3"]["inputs"]["mask"] == {"from": "invert_40.mask"}


def sd_turbo(scheduler: dict[str, Any]) -> dict[str, Any]:
    """ComfyUI_examples' sdxlturbo_example: SamplerCustom with KSamplerSelect and a scheduler node."""
    return {
        "20": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_turbo_1.0_fp16.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["20", 1], "text": "a cinematic fox"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["20", 1], "text": ""}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "14": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
        "22": scheduler,
        "13": {"class_type": "SamplerCustom", "inputs": {"model": ["20", 0], "add_noise": True, "noise_seed": 0,
                                                         "cfg": 1, "positive": ["6", 0], "negative": ["7", 0],
                                                         "sampler": ["14", 0], "sigmas": ["22", 0],
                                                         "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["20", 2]}},
        "25": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    }


def test_sd_turbo_and_align_your_steps_schedules_carry_their_steps() -> None:
    turbo = import_comfy(sd_turbo({"class_type": "SDTurboScheduler", "inputs": {"model": ["20", 0], "steps": 1,
                                                                                "denoise": 1.0}})).document
    assert turbo["inputs"]["steps"]["default"] == 1
    ays = import_comfy(sd_turbo({"class_type": "AlignYourStepsScheduler", "inputs": {"model_type": "SDXL",
                                                                                     "steps": 10, "denoise": 1.0}}))
    assert ays.document["inputs"]["steps"]["default"] == 10


def test_a_gguf_unet_is_a_bare_model_file_with_its_alias_named() -> None:
    workflow = flux_fill()
    workflow["31"] = {"class_type": "UnetLoaderGGUF", "inputs": {"unet_name": "flux1-dev-Q4_0.gguf"}}
    result = import_comfy(workflow)
    assert result.document["inputs"]["model"]["default"] == "flux1-dev-Q4_0.gguf"
    assert any('transformer = "flux1-dev-Q4_0.gguf"' in warning for warning in result.warnings)


def test_sd3_text_encoders_and_controlnet_apply_sd3() -> None:
    """ComfyUI_examples' sd3_controlnet_example shape: TripleCLIPLoader and ControlNetApplySD3 (API format)."""
    workflow: dict[str, Any] = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd3_medium.safetensors"}},
        "11": {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "clip_g.safetensors", "clip_name2":
                                                            "clip_l.safetensors", "clip_name3": "t5xxl.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": "a house"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["11", 0], "text": ""}},
        "12": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "sd3_canny.safetensors"}},
        "13": {"class_type": "LoadImage", "inputs": {"image": "edges.png"}},
        "14": {"class_type": "ControlNetApplySD3", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
                                                              "control_net": ["12", 0], "vae": ["4", 2],
                                                              "image": ["13", 0], "strength": 0.6,
                                                              "start_percent": 0.0, "end_percent": 0.8}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["14", 0], "negative": ["14", 1],
                                                   "latent_image": ["5", 0], "seed": 1, "steps": 28, "cfg": 4.5,
                                                   "sampler_name": "dpmpp_2m", "scheduler": "sgm_uniform",
                                                   "denoise": 1}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "sd3"}},
    }
    result = import_comfy(workflow)
    nodes = result.document["nodes"]
    assert nodes["controlnet_14"]["inputs"] == {"image": {"from": "load_13.image"}, "model": {"input": "controlnet"},
                                                "weight": 0.6, "start": 0.0, "end": 0.8}
    assert nodes["generate_3"]["inputs"]["controls"] == [{"from": "controlnet_14.control"}]
    assert any("clip_g.safetensors, clip_l.safetensors, t5xxl.safetensors are not used" in warning
               for warning in result.warnings)
