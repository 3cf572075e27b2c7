"""Media bombs and hostile names against the media routes and the OpenAI-compatible endpoints of a real server.

Every input is built here: FLAC at 655 kHz (FLAC's highest rate) that is a few kilobytes on disk and millions of
samples once decoded, one whose header hides its length, a live WebM whose header has no duration and whose sound
runs ten times past the limit, a request for ten 8192x8192 pictures, and names longer than a file name may be.
Each must be refused (4xx) in the route's error shape, with the server's memory flat and nothing left behind in
its data dir.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.support import HostileServer, assert_contained
from tests.support.media_bombs import FLAC_MAX_RATE, flac, webm_without_duration

pytest.importorskip("av")

LONG_NAME = "m" * 300


def kept_files(server: HostileServer) -> set[Path]:
    """The files the server keeps for uploads, outputs and previews (a refused request must add none)."""
    return {path for path in (server.data_dir / "artifacts").rglob("*") if path.is_file()}


@pytest.fixture
def nothing_left(server: HostileServer) -> Iterator[None]:
    before = kept_files(server)
    yield
    assert kept_files(server) == before, "a refused request left files in the data dir"


@pytest.fixture(scope="module")
def endless_webm() -> bytes:
    """600 s of sound in a WebM without a duration (about 280 KB), ten times the server's 60 s."""
    return webm_without_duration(600)


def transcribe(server: HostileServer, name: str, sound: bytes, model: str = "whisper-tiny.en") -> Any:
    return server.attack(name, "POST", "/v1/audio/transcriptions", data={"model": model},
                         files={"file": ("sound.flac", sound, "audio/flac")})


@pytest.mark.usefixtures("nothing_left")
@pytest.mark.parametrize(("seconds", "hidden", "reason"), [
    (110, False, "the sound is 110.0 s long, over the limit of 60 s"),
    (30, False, "19,660,500 samples to decode, over the budget of 5,760,000"),
    (110, True, "the sound decodes to more than 5,760,000 samples (655350 Hz, 1 channel(s))")])
def test_a_high_rate_flac_is_refused_for_transcription(server: HostileServer, seconds: int, hidden: bool,
                                                       reason: str) -> None:
    """Over the length (from the header), within it but over the decoded samples (from the header), and with the
    header's length hidden (counted while decoding at 16 kHz, stopped at the budget)."""
    sound = flac(FLAC_MAX_RATE, seconds, hide_length=hidden)
    assert len(sound) < 64_000
    shown = "length hidden, " if hidden else ""
    response = transcribe(server, f"FLAC 655 kHz x {seconds} s ({shown}{len(sound) // 1000} KB)", sound)
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    assert reason in response.json()["error"]["message"]


@pytest.mark.usefixtures("nothing_left")
def test_a_webm_without_a_duration_is_refused_at_upload(server: HostileServer, endless_webm: bytes) -> None:
    response = server.attack(f"upload: WebM, no duration, 600 s of sound ({len(endless_webm) // 1000} KB)",
                             "POST", "/api/uploads", files={"file": ("endless.webm", endless_webm, "video/webm")})
    assert response.status_code == 415
    assert response.json()["detail"].startswith("its sound track runs past the limit of 60 s (--max-audio-seconds")


def test_video_load_refuses_a_webm_without_a_duration(server: HostileServer, endless_webm: bytes,
                                                      tmp_path: Path) -> None:
    """The same file placed in the inputs folder, where a graph's video.load reads it: the run fails naming the
    node, the input and the reason, before the sound is decoded."""
    warm = server.data_dir / "inputs" / "warm.webm"
    warm.write_bytes(webm_without_duration(1))
    assert run_to_end(server, "warm.webm")["status"] == "succeeded"  # torch and PyAV imported before measuring
    bomb = server.data_dir / "inputs" / "endless.webm"
    bomb.write_bytes(endless_webm)
    try:
        with server.measure("video.load: WebM, no duration, 600 s of sound") as row:
            record = run_to_end(server, "endless.webm")
            error = record["nodes"]["load"]["error"]
            row.answer = f"run {record['status']}: {error[:60]}"
    finally:
        bomb.unlink()
        warm.unlink()
    assert_contained(row)
    assert record["status"] == "failed"
    assert error == ("node 'load' (video.load), input 'path': endless.webm: its sound track runs past the limit of "
                     "60 s (--max-audio-seconds; the file's header gives no duration, its packets were counted)")


def run_to_end(server: HostileServer, path: str) -> dict[str, Any]:
    graph = {"nodes": {"load": {"type": "video.load", "inputs": {"path": path}}},
             "outputs": {"video": {"from": "load.video"}}}
    run_id = server.request("POST", "/api/runs", json={"graph": graph}).json()["id"]
    deadline = time.monotonic() + 60
    while True:
        record: dict[str, Any] = server.request("GET", f"/api/runs/{run_id}").json()
        if record["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


@pytest.mark.usefixtures("nothing_left")
@pytest.mark.parametrize(("size", "n", "param"), [("8192x8192", 10, "size"), ("8192x8192", 1, "size"),
                                                  ("1024x1024", 10, "n")])
def test_images_over_the_pixel_budget_are_refused(server: HostileServer, size: str, n: int, param: str) -> None:
    response = server.attack(f"images: {size} x n={n}", "POST", "/v1/images/generations",
                             json={"model": "tiny/sd", "prompt": "a fox", "size": size, "n": n})
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert "over this server's budget of 4,000,000 pixels a request (--max-image-pixels)" in \
        response.json()["error"]["message"]


@pytest.mark.usefixtures("nothing_left")
@pytest.mark.parametrize(("route", "body"), [
    ("/v1/chat/completions", {"model": LONG_NAME, "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/images/generations", {"model": f"/{LONG_NAME}", "prompt": "x"}),
    ("/v1/audio/speech", {"model": LONG_NAME, "input": "hi", "voice": "alloy"}),
    ("/v1/models/" + LONG_NAME, None),
    ("/v1/models/tiny/" + LONG_NAME, None)])
def test_a_name_longer_than_a_file_name_is_not_found(server: HostileServer, route: str,
                                                     body: dict[str, Any] | None) -> None:
    method = "GET" if body is None else "POST"
    response = server.attack(f"300-character model name: {method} {route[:20]}", method, route,
                             **({} if body is None else {"json": body}))
    assert response.status_code == 404


@pytest.mark.usefixtures("nothing_left")
def test_a_long_model_name_for_transcription_is_not_found(server: HostileServer) -> None:
    sound = flac(16_000, 1)
    response = transcribe(server, "300-character model name: transcription", sound, model=LONG_NAME)
    assert response.status_code == 404
