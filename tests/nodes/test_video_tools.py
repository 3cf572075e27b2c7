"""video.load, video.frames, video.from_images and video.upscale: exact round trips, files with and without sound,
upscaling with tiny and real weights, the media limits checked from the header, and errors naming node and input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event
from nodeforge.engine.files import FilePolicy
from nodeforge.engine.limits import MediaLimits
from nodeforge.engine.media_io import read_video, write_mp4
from nodeforge.engine.registry import Registry
from nodeforge.engine.session import Session
from nodeforge.engine.values import Audio, Image, Video
from tests.nodes.image_support import psnr
from tests.nodes.media_support import media_executor, run_nodes, sine
from tests.support.clips import moving_shapes

__all__ = ["media_executor"]

RATE = 16000
ROOT = Path(__file__).resolve().parents[2]


def clip(frames: int = 8, width: int = 48, height: int = 32, fps: float = 8.0, seconds: float | None = 1.0) -> Video:
    pixels = moving_shapes(frames, max(width, height))[:, :, :height, :width].contiguous()
    audio = Audio(sine(seconds, RATE), RATE) if seconds else None
    return Video(pixels, fps, audio)


def write_clip(path: Path, video: Video) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(video, path)
    return path


def load(session: Session, path: str, events: list[Event] | None = None) -> Any:
    return run_nodes(session, {"load": {"type": "video.load", "inputs": {"path": path}}},
                     {"video": "load.video", "audio": "load.audio"}, events=events)


def test_frames_to_video_to_frames_is_exact(media_executor: Session) -> None:
    images = Image(moving_shapes(5, 24)[:, :, :20, :])
    graph = parse_document({
        "inputs": {"pictures": {"type": "image"}},
        "nodes": {"video": {"type": "video.from_images", "inputs": {"images": {"input": "pictures"}, "fps": 12.5}},
                  "frames": {"type": "video.frames", "inputs": {"video": {"from": "video.video"}}}},
        "outputs": {"video": {"from": "video.video"}, "frames": {"from": "frames.images"}}})
    result = media_executor.run(graph, {"pictures": images})
    assert result.record.status == "succeeded", result.record.error
    video, frames = result.values["video"], result.values["frames"]
    assert tuple(video.frames.shape) == (5, 3, 20, 24) and video.fps == 12.5 and video.audio is None
    assert tuple(frames.tensor.shape) == (5, 3, 20, 24)
    assert bool((frames.tensor == images.tensor).all())


def test_from_images_takes_a_list_of_pictures_and_batches_in_order(media_executor: Session) -> None:
    """A video as a list of images and back: each item a linked batch or a graph input, frames in list order."""
    still = Image(moving_shapes(1, 24, seed=5)[:, :, :20, :])
    source = clip(frames=3, width=24, height=20, seconds=None)
    graph = parse_document({
        "inputs": {"clip": {"type": "video"}, "still": {"type": "image"}},
        "nodes": {"frames": {"type": "video.frames", "inputs": {"video": {"input": "clip"}}},
                  "video": {"type": "video.from_images", "inputs": {
                      "images": [{"input": "still"}, {"from": "frames.images"}, {"input": "still"}], "fps": 5}},
                  "back": {"type": "video.frames", "inputs": {"video": {"from": "video.video"}}}},
        "outputs": {"video": {"from": "video.video"}, "frames": {"from": "back.images"}}})
    result = media_executor.run(graph, {"clip": source, "still": still})
    assert result.record.status == "succeeded", result.record.error
    video, frames = result.values["video"], result.values["frames"]
    assert tuple(video.frames.shape) == (5, 3, 20, 24) and video.fps == 5 and video.audio is None
    expected = torch.cat([still.tensor, source.frames, still.tensor])
    assert bool((frames.tensor == expected).all())


def test_from_images_refuses_pictures_of_different_sizes(media_executor: Session) -> None:
    graph = parse_document({
        "inputs": {"small": {"type": "image"}, "large": {"type": "image"}},
        "nodes": {"video": {"type": "video.from_images", "inputs": {
            "images": [{"input": "small"}, {"input": "large"}]}}},
        "outputs": {"video": {"from": "video.video"}}})
    result = media_executor.run(graph, {"small": Image(moving_shapes(1, 16)), "large": Image(moving_shapes(2, 24))})
    assert result.record.nodes["video"].error == (
        "node 'video' (video.from_images), input 'images': image 2 is 24x24 with 3 channel(s); the first is 16x16 "
        "with 3 channel(s): every frame of a video has one size")


def test_a_sound_track_without_a_duration_is_counted_not_trusted(tmp_path: Path) -> None:
    """A live WebM's header gives no length: video.load counts its packets before decoding, and decoding itself
    stops at the limit (the file's own header cannot be trusted either way)."""
    from nodeforge.engine.errors import GraphInputError
    from tests.support.media_bombs import webm_without_duration

    path = tmp_path / "endless.webm"
    path.write_bytes(webm_without_duration(5))
    limits = MediaLimits(max_audio_seconds=1)
    session = Session(GraphEnv(Registry.discover()), None, data_dir=tmp_path / "data", limits=limits)
    events: list[Event] = []
    result = load(session, str(path), events)
    assert result.record.nodes["load"].error == (
        "node 'load' (video.load), input 'path': endless.webm: its sound track runs past the limit of 1 s "
        "(--max-audio-seconds; the file's header gives no duration, its packets were counted)")
    assert not [e for e in events if e.kind == "node.progress"]  # refused before a frame was decoded
    with pytest.raises(GraphInputError, match=r"^endless\.webm: its sound track: the sound is longer than the "
                                              r"limit of 1 s \(--max-audio-seconds\)$"):
        read_video(path, limits)
    assert read_video(path, MediaLimits(max_audio_seconds=6)).audio is not None


def test_saved_video_loads_with_its_frames_fps_and_sound(media_executor: Session, tmp_path: Path) -> None:
    source = clip()
    graph = parse_document({
        "inputs": {"pictures": {"type": "image"}, "sound": {"type": "audio"}},
        "nodes": {"video": {"type": "video.from_images", "inputs": {"images": {"input": "pictures"}, "fps": 8}},
                  "sound": {"type": "video.combine", "inputs": {"video": {"from": "video.video"},
                                                                "audio": {"input": "sound"}}},
                  "save": {"type": "video.save", "inputs": {"video": {"from": "sound.video"}, "name": "clip",
                                                            "folder": str(tmp_path)}},
                  "load": {"type": "video.load", "inputs": {"path": {"from": "save.path"}}}},
        "outputs": {"video": {"from": "load.video"}, "audio": {"from": "load.audio"}}})
    result = media_executor.run(graph, {"pictures": Image(source.frames), "sound": source.audio})
    assert result.record.status == "succeeded", result.record.error
    loaded, audio = result.values["video"], result.values["audio"]
    assert tuple(loaded.frames.shape) == (8, 3, 32, 48) and loaded.fps == 8
    assert psnr(loaded.frames, source.frames) > 25  # H.264 in yuv420p: lossy, but the same pictures
    assert all(psnr(loaded.frames[i], source.frames[i]) > psnr(loaded.frames[i], source.frames[i - 1])
               for i in range(8))  # in the same order
    assert audio.sample_rate == RATE and audio.tensor.shape[0] == 1
    assert bool((audio.tensor == loaded.audio.tensor).all())
    assert abs(audio.tensor.shape[1] - RATE) <= RATE / 8  # within one frame (AAC adds its priming samples)


def test_mp4_with_sound_and_gif_without(media_executor: Session, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    mp4 = write_clip(tmp_path / "with sound.mp4", clip(frames=6, fps=24, seconds=0.25))
    result = load(media_executor, str(mp4))
    video = result.values["video"]
    assert tuple(video.frames.shape) == (6, 3, 32, 48) and video.fps == 24
    assert video.audio is not None and abs(video.audio.tensor.shape[1] - RATE / 4) <= RATE / 24 + 1024
    pictures = Image(moving_shapes(5, 40)[:, :, :30, :]).to_pil()
    pictures[0].save(tmp_path / "silent.gif", save_all=True, append_images=pictures[1:], duration=100, loop=0)
    events: list[Event] = []
    result = load(media_executor, str(tmp_path / "silent.gif"), events)
    assert result.record.status == "succeeded", result.record.error
    gif = result.values["video"]
    assert tuple(gif.frames.shape) == (5, 3, 30, 40) and gif.fps == 10
    assert gif.audio is None and result.values["audio"] is None
    assert [(e.data.step, e.data.total) for e in events if e.kind == "node.progress"] == [(i, 5) for i in range(1, 6)]
    first = Image.from_pil([PILImage.open(tmp_path / "silent.gif").convert("RGB")]).tensor
    assert psnr(gif.frames[:1], first) > 40



def test_the_empty_audio_of_a_silent_file_downstream(media_executor: Session, tmp_path: Path) -> None:
    """An optional audio input takes it as no sound; a required one fails naming the input, before any model."""
    path = write_clip(tmp_path / "silent.mp4", clip(frames=2, seconds=None))
    result = run_nodes(media_executor, {
        "load": {"type": "video.load", "inputs": {"path": str(path)}},
        "again": {"type": "video.combine", "inputs": {"video": {"from": "load.video"},
                                                      "audio": {"from": "load.audio"}}},
        "words": {"type": "audio.transcribe", "inputs": {"audio": {"from": "load.audio"}, "model": "tiny/whisper"}}},
        {"video": "again.video", "text": "words.text"})
    assert result.record.nodes["again"].status == "succeeded" and result.values["video"].audio is None
    assert result.record.nodes["words"].error == (
        "node 'words' (audio.transcribe), input 'audio': the output linked here gave no value (e.g. video.load's "
        "audio for a file without sound)")

@pytest.mark.parametrize(("suffix", "codec"), [(".webm", "libvpx-vp9"), (".mov", "mpeg4")])
def test_webm_and_mov_load(media_executor: Session, tmp_path: Path, suffix: str, codec: str) -> None:
    import av
    import numpy as np

    frames = (moving_shapes(4, 32).permute(0, 2, 3, 1) * 255).round().byte().numpy()
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    video = load(media_executor, str(path)).values["video"]
    assert tuple(video.frames.shape) == (4, 3, 32, 32) and video.fps == 12 and video.audio is None


def test_an_upload_id_loads_and_a_plain_name_is_found_in_the_inputs(media_executor: Session) -> None:
    data = media_executor.data_dir
    assert data is not None
    artifact = "0123456789abcdef0123456789abcdef"
    write_clip(data / "artifacts" / "files" / f"{artifact}.mp4", clip(frames=3, seconds=None))
    assert tuple(load(media_executor, artifact).values["video"].frames.shape) == (3, 3, 32, 48)
    assert tuple(load(media_executor, f"/api/artifacts/{artifact}").values["video"].frames.shape) == (3, 3, 32, 48)
    write_clip(data / "inputs" / "plain.mp4", clip(frames=2, seconds=None))
    assert tuple(load(media_executor, "plain.mp4").values["video"].frames.shape) == (2, 3, 32, 48)


def test_load_keys_on_the_files_content(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", clip(frames=3, seconds=0.5))
    cache = ResultCache(tmp_path / "cache")
    session = Session(GraphEnv(Registry.discover()), cache, data_dir=tmp_path / "data")
    nodes = {"load": {"type": "video.load", "inputs": {"path": str(path)}},
             "frames": {"type": "video.frames", "inputs": {"video": {"from": "load.video"}}}}
    try:
        assert tuple(run_nodes(session, nodes).values["frames.images"].tensor.shape) == (3, 3, 32, 48)
        again = run_nodes(session, nodes, {"audio": "load.audio"})
        assert again.record.nodes["load"].status == "cached" and again.values["audio"].sample_rate == RATE
        write_clip(path, clip(frames=5, seconds=None))
        changed = run_nodes(session, nodes)
        assert changed.record.nodes["load"].status == "succeeded"
        assert tuple(changed.values["frames.images"].tensor.shape) == (5, 3, 32, 48)
    finally:
        cache.close()


def test_tiny_upscale_is_4x_keeps_count_fps_and_sound_with_progress_per_frame(media_executor: Session) -> None:
    source = clip(frames=4, width=16, height=12, fps=6, seconds=0.5)
    for tile in (0, 8):
        events: list[Event] = []
        result = media_executor.run(upscale_graph("tiny/esrgan", tile), {"clip": source}, listener=events.append)
        assert result.record.status == "succeeded", result.record.error
        big = result.values["big"]
        assert tuple(big.frames.shape) == (4, 3, 48, 64) and big.fps == 6
        assert big.audio is not None and bool((big.audio.tensor == source.audio.tensor).all())
        assert big.audio.sample_rate == RATE
        assert [(e.data.step, e.data.total) for e in events if e.kind == "node.progress" and e.data.node == "up"] == \
            [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_upscale_frames_match_the_image_upscaler(media_executor: Session) -> None:
    source = clip(frames=3, width=16, height=16, seconds=None)
    video = media_executor.run(upscale_graph("tiny/esrgan", 0), {"clip": source}).values["big"]
    graph = parse_document({"inputs": {"picture": {"type": "image"}},
                            "nodes": {"up": {"type": "image.upscale", "inputs": {"image": {"input": "picture"},
                                                                                 "model": "tiny/esrgan"}}},
                            "outputs": {"big": {"from": "up.image"}}})
    images = media_executor.run(graph, {"picture": Image(source.frames)}).values["big"]
    assert float((video.frames - images.tensor.cpu()).abs().max()) < 1e-5


def test_realesr_animevideov3_upscales_a_clip_better_than_bicubic(media_executor: Session) -> None:
    from torch.nn import functional as F  # noqa: N812

    truth = moving_shapes(4, 128)
    small = F.interpolate(truth, size=(32, 32), mode="bicubic", antialias=True).clamp(0, 1)
    events: list[Event] = []
    result = media_executor.run(upscale_graph("realesr-animevideov3", 0), {"clip": Video(small, 8.0)},
                                listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    big = result.values["big"]
    assert tuple(big.frames.shape) == (4, 3, 128, 128) and big.fps == 8
    bicubic = F.interpolate(small, size=(128, 128), mode="bicubic").clamp(0, 1)
    assert psnr(big.frames, truth) > psnr(bicubic, truth) + 1.0
    assert [e.data.step for e in events if e.kind == "node.progress" and e.data.node == "up"] == [1, 2, 3, 4]


def test_a_cancelled_upscale_stops_between_frames(media_executor: Session) -> None:
    cancel = threading.Event()
    steps: list[int] = []

    def listen(event: Event) -> None:
        if event.kind == "node.progress" and event.data.node == "up":
            steps.append(event.data.step)
            cancel.set()

    result = media_executor.run(upscale_graph("tiny/esrgan", 0), {"clip": clip(frames=6, width=8, height=8)},
                                listener=listen, cancel=cancel)
    assert result.record.status == "cancelled"
    assert steps == [1]


def test_over_the_frame_or_pixel_limit_is_refused_from_the_header(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "long.mp4", clip(frames=8))
    for limits, reason in [
        (MediaLimits(max_video_frames=3), "the video has 8 frames or more, over the limit of 3 (--max-video-frames)"),
        (MediaLimits(max_image_pixels=1000), "each frame: the image is 48x32 (0 MP), over the limit of 0 MP "
                                             "(--max-image-pixels)"),
        (MediaLimits(max_audio_seconds=0.5), "its sound track: the sound is 1.1 s long, over the limit of 0.5 s "
                                             "(--max-audio-seconds)")]:
        session = Session(GraphEnv(Registry.discover()), None, data_dir=tmp_path / "data", limits=limits)
        events: list[Event] = []
        result = load(session, str(path), events)
        assert result.record.nodes["load"].error == f"node 'load' (video.load), input 'path': long.mp4: {reason}"
        assert not [e for e in events if e.kind == "node.progress"]  # not one frame was decoded
    within = Session(GraphEnv(Registry.discover()), None, data_dir=tmp_path / "data",
                     limits=MediaLimits(max_video_frames=8, max_image_pixels=48 * 32))
    assert tuple(load(within, str(path)).values["video"].frames.shape) == (8, 3, 32, 48)


def test_missing_and_undecodable_files_name_node_and_input(media_executor: Session, tmp_path: Path) -> None:
    from nodeforge.engine.media_io import write_wav

    result = load(media_executor, str(tmp_path / "nowhere.mp4"))
    assert result.record.nodes["load"].error == (
        f"node 'load' (video.load), input 'path': no file or uploaded artifact '{tmp_path / 'nowhere.mp4'}'")
    text = tmp_path / "notes.mp4"
    text.write_text("these are notes, not a video\n" * 20)
    error = load(media_executor, str(text)).record.nodes["load"].error or ""
    assert error.startswith("node 'load' (video.load), input 'path': cannot decode notes.mp4 as a video (")
    assert error.endswith("accepted: MP4, WebM, GIF, MOV and other containers FFmpeg reads")
    assert str(tmp_path) not in error
    write_wav(Audio(sine(0.1, RATE), RATE), tmp_path / "sound.wav")
    assert load(media_executor, str(tmp_path / "sound.wav")).record.nodes["load"].error == (
        "node 'load' (video.load), input 'path': sound.wav has no video stream; accepted: MP4, WebM, GIF, MOV and "
        "other containers FFmpeg reads")


def test_the_server_path_policy_decides_what_video_load_reads(tmp_path: Path) -> None:
    from nodeforge.engine.errors import GraphValidationError

    readable, outside = tmp_path / "readable", tmp_path / "outside"
    write_clip(readable / "ok.mp4", clip(frames=2, seconds=None))
    write_clip(outside / "secret.mp4", clip(frames=2, seconds=None))
    session = Session(GraphEnv(Registry.discover()), None, data_dir=tmp_path / "data",
                      policy=FilePolicy(read=(readable,), write=(tmp_path / "data" / "outputs",)))
    assert tuple(load(session, "ok.mp4").values["video"].frames.shape) == (2, 3, 32, 48)
    with pytest.raises(GraphValidationError) as refused:  # a literal path: refused before anything runs
        load(session, str(outside / "secret.mp4"))
    assert [(issue.node, issue.input, issue.code, issue.message) for issue in refused.value.issues] == [
        ("load", "path", "forbidden_path",
         f"'{outside / 'secret.mp4'}' is not a file inside the folders this server allows")]
    shutil.copy(outside / "secret.mp4", readable / "copy.mp4")
    assert load(session, str(readable / "copy.mp4")).record.status == "succeeded"


def test_static_problems_are_reported_before_anything_runs(media_executor: Session) -> None:
    from nodeforge.engine.errors import GraphValidationError

    with pytest.raises(GraphValidationError) as caught:
        media_executor.run(parse_document({"nodes": {
            "load": {"type": "video.load", "inputs": {"path": " "}},
            "up": {"type": "video.upscale", "inputs": {"video": {"from": "load.video"}, "model": "tiny/nothing"}},
            "back": {"type": "video.from_images", "inputs": {"images": {"from": "load.video"}, "fps": 0}}}}))
    problems = {(issue.node, issue.input) for issue in caught.value.issues}
    assert {("load", "path"), ("up", "model"), ("back", "images"), ("back", "fps")} <= problems


def upscale_graph(model: str, tile: int) -> Any:
    return parse_document({"inputs": {"clip": {"type": "video"}},
                           "nodes": {"up": {"type": "video.upscale", "inputs": {"video": {"input": "clip"},
                                                                                "model": model, "tile": tile}}},
                           "outputs": {"big": {"from": "up.video"}}})



def test_the_readme_command_upscales_the_sample_clip_offline(tmp_path: Path, shared_models_dir: Path) -> None:
    """``nodeforge run graphs/upscale-video.json`` as the README gives it: 12 frames of 96x64 become 384x256 at
    the same 8 fps, with the chime still on the sound track."""
    env = {**os.environ, "NODEFORGE_MODELS_DIR": str(shared_models_dir), "HF_HUB_OFFLINE": "1",
           "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", "run", "graphs/upscale-video.json",
                           "--json", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data")],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)
    output = record["outputs"]["upscaled"]
    assert output["media_type"] == "video/mp4"
    sample = read_video(ROOT / "graphs" / "assets" / "sample-clip.mp4")
    video = read_video(Path(output["path"]))
    assert tuple(sample.frames.shape) == (12, 3, 64, 96)
    assert tuple(video.frames.shape) == (12, 3, 256, 384) and video.fps == sample.fps == 8
    assert video.audio is not None and sample.audio is not None
    assert abs(video.audio.tensor.shape[1] - sample.audio.tensor.shape[1]) <= RATE / 8 + 1024
