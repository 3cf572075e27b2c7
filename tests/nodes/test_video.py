"""video.generate on tiny/wan (text- and image-to-video), video.combine and video.save: frames, fps, sound track,
determinism, progress, and limits reported before running or as node errors naming the input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.events import Event
from nodeforge.engine.media_io import read_video
from nodeforge.engine.session import Session
from nodeforge.engine.values import Audio, Image, Video
from nodeforge.nodes.video_pipelines import FAMILIES
from tests.nodes.media_support import media_executor, run_nodes, sine

__all__ = ["media_executor"]

SMALL = {"prompt": "a red fox running in the snow", "model": "tiny/wan", "frames": 9, "width": 64, "height": 64,
         "steps": 3}


def generate(session: Session, listener=None, **inputs) -> tuple[Video, list[Event]]:
    events: list[Event] = []
    result = run_nodes(session, {"gen": {"type": "video.generate", "inputs": {**SMALL, **inputs}}},
                       {"video": "gen.video"}, listener=listener or events.append)
    assert result.record.status == "succeeded", result.record.error
    return result.values["video"], events


def test_text_to_video_frames_fps_size_and_progress_per_step(media_executor: Session) -> None:
    video, events = generate(media_executor, seed=1, fps=12)
    assert tuple(video.frames.shape) == (9, 3, 64, 64) and video.fps == 12
    assert float(video.frames.min()) >= 0.0 and float(video.frames.max()) <= 1.0
    progress = [(e.data.step, e.data.total) for e in events if e.kind == "node.progress"]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    finished = next(i for i, e in enumerate(events) if e.kind == "node.finished")
    assert all(i < finished for i, e in enumerate(events) if e.kind == "node.progress")


def test_same_seed_same_frames_other_seed_other_frames(media_executor: Session) -> None:
    first, _ = generate(media_executor, seed=7)
    again, _ = generate(media_executor, seed=7)
    other, _ = generate(media_executor, seed=8)
    assert bool((first.frames == again.frames).all())
    assert not bool((first.frames == other.frames).all())


def test_image_to_video_starts_from_the_connected_image(media_executor: Session) -> None:
    import torch

    graph = parse_document({"inputs": {"still": {"type": "image"}},
                            "nodes": {"gen": {"type": "video.generate",
                                              "inputs": {**SMALL, "image": {"input": "still"}, "seed": 3}}},
                            "outputs": {"video": {"from": "gen.video"}}})
    events: list[Event] = []
    still = Image(torch.rand(1, 3, 48, 80, generator=torch.Generator().manual_seed(0)))
    result = media_executor.run(graph, {"still": still}, listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    assert tuple(result.values["video"].frames.shape) == (9, 3, 64, 64)
    assert [e.data.text for e in events if e.kind == "node.warning"] == [
        "image resized from 80x48 to 64x64 (the video's size)"]
    text_only, _ = generate(media_executor, seed=3)
    assert not bool((text_only.frames == result.values["video"].frames).all())


def test_family_limits_are_reported_before_anything_runs(media_executor: Session) -> None:
    nodes = {
        "a": {"type": "video.generate", "inputs": {**SMALL, "frames": 10}},
        "b": {"type": "video.generate", "inputs": {**SMALL, "width": 72}},
        "c": {"type": "video.generate", "inputs": {**SMALL, "model": "tiny/llm"}},
        "e": {"type": "video.generate", "inputs": {**SMALL, "model": "some/unknown-hub-model", "height": 60}},
    }
    with pytest.raises(GraphValidationError) as caught:
        run_nodes(media_executor, nodes)
    issues = {(issue.node, issue.input): issue.message for issue in caught.value.issues}
    assert set(issues) == {("a", "frames"), ("b", "width"), ("c", "model"), ("e", "height")}
    assert "4k+1" in issues[("a", "frames")] and "use 9 or 13" in issues[("a", "frames")]
    assert "multiple of 16" in issues[("b", "width")] and "use 64 or 80" in issues[("b", "width")]
    assert "multiple of 8" in issues[("e", "height")]


def test_family_rules_of_the_other_families() -> None:
    assert FAMILIES["ltx"].frames_problem(17) is None and "8k+1" in (FAMILIES["ltx"].frames_problem(13) or "")
    assert "multiple of 32" in (FAMILIES["ltx"].size_problem("width", 48) or "")
    assert "at most 32 frames" in (FAMILIES["animatediff"].frames_problem(40) or "")
    assert FAMILIES["animatediff"].image_to_video is None


def test_loaded_checkpoint_limits_are_node_errors_naming_the_input(media_executor: Session,
                                                                   shared_models_dir: Path,
                                                                   tmp_path: Path) -> None:
    from nodeforge.nodes.models import build_resolver

    tiny = build_resolver().resolve("tiny/wan", None).path
    assert tiny.is_relative_to(shared_models_dir)
    text_only = tmp_path / "wan-t2v"
    shutil.copytree(tiny, text_only)
    index = json.loads((text_only / "model_index.json").read_text())
    (text_only / "model_index.json").write_text(json.dumps({**index, "expand_timesteps": False}))

    wide = run_nodes(media_executor, {"gen": {"type": "video.generate",
                                              "inputs": {**SMALL, "model": str(tiny), "width": 72}}})
    assert "input 'width'" in wide.record.error and "multiple of 16" in wide.record.error
    graph = parse_document({"inputs": {"still": {"type": "image"}},
                            "nodes": {"gen": {"type": "video.generate",
                                              "inputs": {**SMALL, "model": str(text_only),
                                                         "image": {"input": "still"}}}}})
    import torch

    failed = media_executor.run(graph, {"still": Image(torch.rand(1, 3, 64, 64))}).record
    assert "input 'image'" in failed.error and "text only" in failed.error
    assert "Traceback" not in failed.error


def test_combine_fits_the_audio_to_the_video_with_a_warning(media_executor: Session) -> None:
    import torch

    graph = parse_document({
        "inputs": {"pictures": {"type": "image"}, "sound": {"type": "audio"}},
        "nodes": {"clip": {"type": "video.combine", "inputs": {"frames": {"input": "pictures"},
                                                               "audio": {"input": "sound"}, "fps": 8}}},
        "outputs": {"video": {"from": "clip.video"}}})
    frames = Image(torch.rand(12, 3, 32, 32))
    for seconds, word in ((2.0, "trimmed by 0.50 s"), (1.0, "padded with 0.50 s")):
        events: list[Event] = []
        result = media_executor.run(graph, {"pictures": frames, "sound": Audio(sine(seconds, 16000), 16000)},
                                    listener=events.append)
        video: Video = result.values["video"]
        assert video.fps == 8 and video.frames.shape[0] == 12
        assert video.audio is not None and video.audio.tensor.shape == (1, 24000)
        assert any(word in (e.data.text or "") for e in events if e.kind == "node.warning")


def test_combine_needs_exactly_one_of_frames_or_video(media_executor: Session) -> None:
    with pytest.raises(GraphValidationError, match="exactly one of frames or video"):
        run_nodes(media_executor, {"clip": {"type": "video.combine", "inputs": {"fps": 8}}})


def test_saved_mp4_reads_back_with_frames_fps_and_sound(media_executor: Session, tmp_path: Path) -> None:
    result = run_nodes(media_executor, {
        "gen": {"type": "video.generate", "inputs": {**SMALL, "frames": 17, "seed": 2}},
        "say": {"type": "audio.speech", "inputs": {"text": "A fox.", "model": "tiny/vits", "seed": 1}},
        "clip": {"type": "video.combine", "inputs": {"video": {"from": "gen.video"},
                                                     "audio": {"from": "say.audio"}}},
        "save": {"type": "video.save", "inputs": {"video": {"from": "clip.video"}, "name": "fox",
                                                  "folder": str(tmp_path / "saved")}}},
        {"path": "save.path", "clip": "clip.video"}, out_dir=tmp_path / "out")
    assert result.record.status == "succeeded", result.record.error
    saved = Path(result.values["path"])
    assert saved == tmp_path / "saved" / "fox.mp4"
    output = result.record.outputs["clip"]
    assert output["media_type"] == "video/mp4" and Path(output["path"]).suffix == ".mp4"
    for path in (saved, Path(output["path"])):
        video = read_video(path)
        assert tuple(video.frames.shape) == (17, 3, 64, 64) and video.fps == 16
        assert video.audio is not None and video.audio.sample_rate == 16000
        assert abs(video.audio.seconds - 17 / 16) < 0.15
    import av

    with av.open(str(saved)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
    again = run_nodes(media_executor, {"save": {"type": "video.save", "inputs": {
        "video": {"from": "gen.video"}, "name": "fox", "folder": str(tmp_path / "saved")}},
        "gen": {"type": "video.generate", "inputs": {**SMALL, "seed": 2}}}, {"path": "save.path"})
    assert again.values["path"] == str(tmp_path / "saved" / "fox-2.mp4")


def test_odd_sizes_are_padded_with_a_warning(media_executor: Session, tmp_path: Path) -> None:
    import torch

    graph = parse_document({"inputs": {"pictures": {"type": "image"}},
                            "nodes": {"clip": {"type": "video.combine", "inputs": {"frames": {"input": "pictures"}}},
                                      "save": {"type": "video.save", "inputs": {"video": {"from": "clip.video"},
                                                                                "folder": str(tmp_path)}}},
                            "outputs": {"path": {"from": "save.path"}}})
    events: list[Event] = []
    result = media_executor.run(graph, {"pictures": Image(torch.rand(5, 3, 31, 33))}, listener=events.append)
    video = read_video(Path(result.values["path"]))
    assert tuple(video.frames.shape) == (5, 3, 32, 34) and video.fps == 16 and video.audio is None
    assert any("padded to 34x32" in (e.data.text or "") for e in events if e.kind == "node.warning")


@pytest.fixture(scope="module")
def tiny_ltx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LTX-Video pipeline folder with random weights (4x spatial and temporal VAE): the LTX family end to end."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    from nodeforge.nodes.models.tiny.tiny_media import t5_tokenizer

    folder = tmp_path_factory.mktemp("ltx")
    torch.manual_seed(0)
    tokenizer = t5_tokenizer()
    encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                      num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1,
        patch_size_t=1, encoder_causal=True, decoder_causal=False)
    LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=encoder, tokenizer=tokenizer,
                transformer=transformer).save_pretrained(str(folder))
    return folder


def test_ltx_folder_makes_video_from_text_and_from_an_image(media_executor: Session, tiny_ltx: Path) -> None:
    import torch

    ltx = {**SMALL, "model": str(tiny_ltx), "width": 32, "height": 32, "steps": 2}
    graph = parse_document({"inputs": {"still": {"type": "image"}},
                            "nodes": {"text": {"type": "video.generate", "inputs": ltx},
                                      "picture": {"type": "video.generate",
                                                  "inputs": {**ltx, "image": {"input": "still"}}},
                                      "odd": {"type": "video.generate", "inputs": {**ltx, "frames": 11}}},
                            "outputs": {"text": {"from": "text.video"}, "picture": {"from": "picture.video"},
                                        "odd": {"from": "odd.video"}}})
    result = media_executor.run(graph, {"still": Image(torch.rand(1, 3, 32, 32))})
    nodes = result.record.nodes
    assert nodes["text"].status == nodes["picture"].status == "succeeded", result.record.error
    assert tuple(result.values["text"].frames.shape) == (9, 3, 32, 32)
    assert tuple(result.values["picture"].frames.shape) == (9, 3, 32, 32)
    assert nodes["odd"].status == "failed"
    assert "input 'frames'" in nodes["odd"].error and "ltx makes 4k+1 frames" in nodes["odd"].error
