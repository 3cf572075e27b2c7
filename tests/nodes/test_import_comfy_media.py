"""ComfyUI video and audio workflows import onto ``video.*`` and ``audio.*``: Wan text-to-video and image-to-video
become ``video.generate`` saved by ``video.save``, Stable Audio becomes ``audio.music``, VideoHelperSuite's load and
combine become ``video.load`` and ``video.combine``; what is not carried over is noted, and the Wan and Stable Audio
imports run on tiny models with their files given through --set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeforge.nodes.importers import ImportFailed, import_comfy
from tests.nodes.import_support import run_imported


def wan(start_image: bool = False) -> dict[str, Any]:
    """ComfyUI_examples' text_to_video_wan (API format), or its image-to-video with WanImageToVideo."""
    workflow: dict[str, Any] = {
        "37": {"class_type": "UNETLoader", "inputs": {"unet_name": "wan2.1_t2v_1.3B_fp16.safetensors",
                                                      "weight_dtype": "default"}},
        "38": {"class_type": "CLIPLoader", "inputs": {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                      "type": "wan", "device": "default"}},
        "39": {"class_type": "VAELoader", "inputs": {"vae_name": "wan_2.1_vae.safetensors"}},
        "48": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["37", 0], "shift": 8}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": "a fox in the snow"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["38", 0], "text": "blurry"}},
        "40": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 832, "height": 480, "length": 33,
                                                                   "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["48", 0], "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["40", 0], "seed": 82628696717253, "steps": 30,
                                                   "cfg": 6, "sampler_name": "uni_pc", "scheduler": "simple",
                                                   "denoise": 1}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["39", 0]}},
        "28": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI",
                                                            "fps": 16, "lossless": False, "quality": 90,
                                                            "method": "default"}},
    }
    if start_image:
        workflow["52"] = {"class_type": "LoadImage", "inputs": {"image": "flux_start_image.png", "upload": "image"}}
        workflow["50"] = {"class_type": "WanImageToVideo", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
                                                                      "vae": ["39", 0], "start_image": ["52", 0],
                                                                      "width": 512, "height": 512, "length": 33,
                                                                      "batch_size": 1}}
        workflow["3"]["inputs"].update(positive=["50", 0], negative=["50", 1], latent_image=["50", 2])
    return workflow


def stable_audio() -> dict[str, Any]:
    """ComfyUI_examples' Stable Audio Open workflow (API format)."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "stable_audio_open_1.0.safetensors"}},
        "10": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5_base.safetensors", "type": "stable_audio"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 0], "text": "heaven church electronic"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["10", 0], "text": ""}},
        "11": {"class_type": "EmptyLatentAudio", "inputs": {"seconds": 47.6, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["11", 0], "seed": 7, "steps": 50, "cfg": 4.98,
                                                   "sampler_name": "dpmpp_3m_sde_gpu", "scheduler": "exponential",
                                                   "denoise": 1}},
        "12": {"class_type": "VAEDecodeAudio", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "13": {"class_type": "SaveAudio", "inputs": {"audio": ["12", 0], "filename_prefix": "audio/ComfyUI"}},
    }


def test_wan_text_to_video_becomes_video_generate_and_runs_on_tiny_wan(tmp_path: Path, shared_models_dir: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    result = import_comfy(wan())
    document = result.document
    assert document["nodes"]["video_3"] == {"type": "video.generate", "inputs": {
        "prompt": {"input": "prompt"}, "negative_prompt": {"input": "negative_prompt"}, "model": {"input": "model"},
        "steps": {"input": "steps"}, "guidance_scale": 6.0, "seed": {"input": "seed"},
        "frames": {"input": "frames"}, "fps": 16.0, "width": {"input": "width"}, "height": {"input": "height"}}}
    assert document["nodes"]["save_28"] == {"type": "video.save", "inputs": {"video": {"from": "video_3.video"},
                                                                             "name": "ComfyUI"}}
    assert document["outputs"] == {"video": {"from": "video_3.video"}}
    assert {name: decl["default"] for name, decl in document["inputs"].items() if name in ("frames", "model")} == {
        "model": "wan2.1_t2v_1.3B_fp16.safetensors", "frames": 33}
    assert any("node 3 (KSampler): the sampler and scheduler are not carried over" in warning
               for warning in result.warnings)
    assert any("node 28 (SaveAnimatedWEBP): written as an MP4" in warning for warning in result.warnings)
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    sets = ["model=tiny/wan", "width=32", "height=32", "frames=5", "steps=2"]
    record = run_imported(document, tmp_path, sets, capsys)
    assert Path(record["outputs"]["video"]["path"]).suffix == ".mp4"


def test_wan_image_to_video_takes_its_start_image() -> None:
    result = import_comfy(wan(start_image=True))
    generate = result.document["nodes"]["video_3"]["inputs"]
    assert generate["image"] == {"from": "load_52.image"} and result.document["inputs"]["width"]["default"] == 512


def test_stable_audio_becomes_audio_music_and_runs_on_tiny_stable_audio(tmp_path: Path, shared_models_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    document = import_comfy(stable_audio()).document
    assert document["nodes"]["music_3"]["type"] == "audio.music"
    assert document["nodes"]["music_3"]["inputs"]["seconds"] == {"input": "seconds"}
    assert document["inputs"]["seconds"]["default"] == 47.6
    assert document["outputs"] == {"audio": {"from": "music_3.audio"}}
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    run_imported(document, tmp_path, ["model=tiny/stable-audio", "seconds=1", "steps=2"], capsys)


def test_a_video_model_of_another_family_is_named() -> None:
    workflow = wan()
    workflow["37"]["inputs"]["unet_name"] = "hunyuan_video_t2v_720p_bf16.safetensors"
    with pytest.raises(ImportFailed, match="is a HunyuanVideo model: nodeforge does not run the HunyuanVideo family"):
        import_comfy(workflow)


def test_videohelpersuite_load_and_combine_become_video_load_combine_and_save() -> None:
    """VideoHelperSuite's tests/simple.json: VHS_LoadVideo -> VHS_VideoCombine (API format)."""
    workflow = {
        "1": {"class_type": "VHS_LoadVideo", "inputs": {"video": "leader.webm", "force_rate": 0,
                                                        "custom_width": 0, "custom_height": 0}},
        "2": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["1", 0], "audio": ["1", 2], "frame_rate": 8,
                                                           "loop_count": 0, "filename_prefix": "AnimateDiff",
                                                           "format": "video/h264-mp4", "pingpong": False,
                                                           "save_output": True}},
    }
    document = import_comfy(workflow).document
    assert document["nodes"]["load_1"] == {"type": "video.load", "inputs": {"path": {"input": "video"}}}
    assert document["nodes"]["combine_2"]["inputs"] == {"video": {"from": "load_1.video"}, "fps": 8,
                                                        "audio": {"from": "load_1.audio"}}
    assert document["outputs"] == {"video": {"from": "combine_2.video"}}
