"""Decoded-size limits through a real HTTP server: a small file that announces a huge picture, a long sound or
many frames is refused at upload and wherever a graph loads it, from its header, before anything is decoded."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from nodeforge.engine.limits import MediaLimits
from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, wait_finished
from tests.server.test_artifacts_api import MEASURE, png_bytes, wav_bytes


def png_header(width: int, height: int) -> bytes:
    """A PNG that announces ``width`` x ``height`` grey pixels with only a few bytes of data: it decodes into
    ``width * height`` bytes or fails part way, but its header alone says how large it is."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def mp4_bytes(frames: int, folder: Path) -> bytes:
    import torch

    from nodeforge.engine.media_io import write_mp4
    from nodeforge.engine.values import Video

    path = folder / "clip.mp4"
    write_mp4(Video(torch.rand(frames, 3, 16, 16), 8.0), path)
    return path.read_bytes()


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx2.Client]:
    limited = dataclasses.replace(settings, limits=MediaLimits(max_image_pixels=1_000_000, max_video_frames=5,
                                                               max_audio_seconds=0.5))
    with LiveServer(create_app(limited)) as live, httpx2.Client(base_url=live.url, timeout=60) as client:
        yield client


def upload(client: httpx2.Client, name: str, content: bytes) -> httpx2.Response:
    return client.post("/api/uploads", files={"file": (name, content, "application/octet-stream")})


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the bomb is the point: our check answers
def test_a_decompression_bomb_is_refused_at_upload(settings: Settings) -> None:
    bomb = png_header(12_000, 12_000)
    assert len(bomb) < 200
    with LiveServer(create_app(settings)) as live, httpx2.Client(base_url=live.url, timeout=60) as client:
        response = upload(client, "bomb.png", bomb)
    assert response.status_code == 415
    assert "12000x12000 (144 MP), over the limit of 64 MP (--max-image-pixels)" in response.json()["detail"]
    assert list((settings.data_dir / "artifacts" / "files").iterdir()) == []


def test_upload_limits_follow_the_settings(http: httpx2.Client, tmp_path: Path) -> None:
    assert upload(http, "ok.png", png_bytes(1000, 1000)).status_code == 201
    refused = upload(http, "big.png", png_bytes(1001, 1000))
    assert refused.status_code == 415 and "over the limit of 1 MP" in refused.json()["detail"]
    assert upload(http, "short.wav", wav_bytes(samples=4000)).status_code == 201
    long = upload(http, "long.wav", wav_bytes(samples=4001))
    assert long.status_code == 415 and "0.5 s long" in long.json()["detail"]
    assert upload(http, "five.mp4", mp4_bytes(5, tmp_path)).status_code == 201
    many = upload(http, "six.mp4", mp4_bytes(6, tmp_path))
    assert many.status_code == 415 and "6 frames" in many.json()["detail"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the bomb is the point: our check answers
def test_image_load_refuses_a_picture_over_the_budget_before_decoding(http: httpx2.Client,
                                                                      settings: Settings) -> None:
    (settings.data_dir / "inputs" / "bomb.png").write_bytes(png_header(12_000, 12_000))
    graph = {"nodes": {"load": {"type": "image.load", "inputs": {"path": "bomb.png"}}},
             "outputs": {"image": {"from": "load.image"}}}
    record = wait_finished(http, http.post("/api/runs", json={"graph": graph}).json()["id"])
    assert record["status"] == "failed"
    assert record["nodes"]["load"]["error"] == ("node 'load' (image.load), input 'path': bomb.png: the image is "
                                                "12000x12000 (144 MP), over the limit of 1 MP (--max-image-pixels)")
    assert list((settings.data_dir / "cache").rglob("*.safetensors")) == []


def test_a_media_graph_input_over_the_budget_is_refused_at_submission(http: httpx2.Client,
                                                                      settings: Settings) -> None:
    (settings.data_dir / "inputs" / "wide.png").write_bytes(png_bytes(1200, 1000))
    response = http.post("/api/runs", json={"graph": MEASURE, "inputs": {"picture": "wide.png"}})
    assert response.status_code == 422
    [issue] = response.json()["issues"]
    assert issue["input"] == "picture" and issue["code"] == "invalid_graph_input"
    assert "wide.png: the image is 1200x1000 (1.2 MP), over the limit of 1 MP" in issue["message"]
    assert http.get("/api/runs").json()["runs"] == []


def leftovers(settings: Settings) -> list[Path]:
    """Files the server keeps for uploads and runs: none may stay behind a refused request."""
    return sorted(path for path in (settings.data_dir / "artifacts").rglob("*") if path.is_file())


def test_a_high_rate_sound_is_refused_for_transcription_by_its_samples(http: httpx2.Client,
                                                                       settings: Settings) -> None:
    """0.4 s is within the 0.5 s limit, but at 655 kHz it is 262,140 samples, over the budget of 0.5 s at 48 kHz
    stereo: refused from the header before decoding, and counted while decoding when the header hides it."""
    from tests.support.media_bombs import FLAC_MAX_RATE, flac

    def transcribe(content: bytes) -> httpx2.Response:
        return http.post("/v1/audio/transcriptions", data={"model": "whisper-tiny.en"},
                         files={"file": ("bomb.flac", content, "audio/flac")})

    told = transcribe(flac(FLAC_MAX_RATE, 0.4))
    assert told.status_code == 400 and told.json()["error"]["param"] == "file"
    assert told.json()["error"]["message"] == (
        "the file cannot be transcribed: the sound is 0.4 s of 1 channel(s) at 655350 Hz, 262,140 samples to "
        "decode, over the budget of 48,000 (0.5 s at 48 kHz stereo, --max-audio-seconds)")
    hidden = transcribe(flac(FLAC_MAX_RATE, 0.4, hide_length=True))
    assert hidden.status_code == 400
    assert hidden.json()["error"]["message"] == (
        "the file cannot be transcribed: the sound decodes to more than 48,000 samples (655350 Hz, 1 channel(s)), "
        "over the budget of 0.5 s at 48 kHz stereo (--max-audio-seconds)")
    assert leftovers(settings) == [] and http.get("/api/runs").json()["runs"] == []


def test_a_webm_without_a_duration_is_measured_at_upload(http: httpx2.Client, settings: Settings) -> None:
    from tests.support.media_bombs import webm_without_duration

    response = upload(http, "endless.webm", webm_without_duration(3))
    assert response.status_code == 415
    assert response.json()["detail"] == ("its sound track runs past the limit of 0.5 s (--max-audio-seconds; the "
                                         "file's header gives no duration, its packets were counted)")
    assert leftovers(settings) == []


def test_images_over_the_pixel_budget_are_refused_before_a_run(http: httpx2.Client) -> None:
    """--max-image-pixels is the budget of one request's pictures together: width x height x n."""
    def generate(size: str, n: int) -> httpx2.Response:
        return http.post("/v1/images/generations", json={"model": "tiny/sd", "prompt": "x", "size": size, "n": n})

    one = generate("1024x1024", 1)
    assert one.status_code == 400 and one.json()["error"]["param"] == "size"
    assert one.json()["error"]["message"] == ("size: 1024x1024 is 1,048,576 pixels, over this server's budget of "
                                              "1,000,000 pixels a request (--max-image-pixels)")
    many = generate("512x512", 4)
    assert many.status_code == 400 and many.json()["error"]["param"] == "n"
    assert many.json()["error"]["message"] == (
        "n: 4 pictures of 512x512 are 1,048,576 pixels, over this server's budget of 1,000,000 pixels a request "
        "(--max-image-pixels): ask for at most 3")
    assert http.get("/api/runs").json()["runs"] == []
