"""Uploads (typed from their bytes, size-limited) feed media inputs; media outputs are served as artifacts."""

from __future__ import annotations

import dataclasses
import io
import random
import wave
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import wait_finished


def png_bytes(width: int = 12, height: int = 7) -> bytes:
    """A PNG of noise (so its size grows with its area)."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), random.Random(width).randbytes(width * height * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def wav_bytes(samples: int = 800, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(width)
        wav.setframerate(8000)
        wav.writeframes(b"\x01" * samples * width)
    return buffer.getvalue()


MEASURE = {"inputs": {"picture": {"type": "image"}},
           "nodes": {"m": {"type": "test.measure", "inputs": {"image": {"input": "picture"}}}},
           "outputs": {"size": {"from": "m.text"}}}


def test_an_upload_is_an_artifact_a_media_input_accepts(client: TestClient) -> None:
    response = client.post("/api/uploads", files={"file": ("holiday photo!.bin", png_bytes(), "text/plain")})
    assert response.status_code == 201
    uploaded = response.json()
    assert uploaded["media_type"] == "image/png" and uploaded["filename"] == "holiday_photo.png"
    assert uploaded["url"] == f"/api/artifacts/{uploaded['artifact']}" and uploaded["size"] == len(png_bytes())
    for reference in (uploaded["artifact"], uploaded["url"]):
        run = client.post("/api/runs", json={"graph": MEASURE, "inputs": {"picture": reference}})
        assert run.status_code == 202, run.json()
        assert wait_finished(client, run.json()["id"])["outputs"] == {"size": "12x7"}
    served = client.get(uploaded["url"])
    assert served.content == png_bytes() and served.headers["content-type"] == "image/png"
    assert served.headers["content-disposition"] == 'inline; filename="holiday_photo.png"'
    assert served.headers["x-content-type-options"] == "nosniff"


def test_audio_upload_feeds_an_audio_input(client: TestClient) -> None:
    uploaded = client.post("/api/uploads", files={"file": ("a.wav", wav_bytes(), "audio/wav")}).json()
    graph = {"inputs": {"sound": {"type": "audio"}},
             "nodes": {"d": {"type": "test.duration", "inputs": {"audio": {"input": "sound"}}}}}
    run_id = client.post("/api/runs", json={"graph": graph, "inputs": {"sound": uploaded["artifact"]}}).json()["id"]
    assert wait_finished(client, run_id)["outputs"] == {"d.text": "800 samples at 8000 Hz"}


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("page.png", b"<html><script>alert(1)</script></html>", "unsupported content"),
    ("empty.png", b"", "empty"),
    ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot be decoded"),
    ("deep.wav", wav_bytes(width=3), "only 16-bit PCM"),
    ("notes.txt", b"just text", "unsupported content"),
])
def test_uploads_are_typed_from_their_bytes(client: TestClient, name: str, content: bytes, reason: str) -> None:
    response = client.post("/api/uploads", files={"file": (name, content, "image/png")})
    assert response.status_code in (415, 422)
    assert reason in response.json()["detail"]


def test_upload_limit(settings: Settings) -> None:
    small = dataclasses.replace(settings, max_upload_bytes=2000)
    with TestClient(create_app(small), base_url="http://127.0.0.1") as client:
        big = client.post("/api/uploads", files={"file": ("big.png", png_bytes(400, 400), "image/png")})
        assert big.status_code == 413 and "limit" in big.json()["detail"]
        assert client.post("/api/uploads", files={"file": ("ok.png", png_bytes(), "image/png")}).status_code == 201
    assert list((small.data_dir / "artifacts" / "tmp").iterdir()) == []
    assert len(list((small.data_dir / "artifacts" / "files").iterdir())) == 1


def test_media_inputs_take_only_artifacts_or_allowed_files(client: TestClient, tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(png_bytes())
    for value in (str(outside), "../outside.png", "0" * 32, 7):
        response = client.post("/api/runs", json={"graph": MEASURE, "inputs": {"picture": value}})
        assert response.status_code == 422, value
        assert response.json()["issues"][0]["code"] == "invalid_graph_input"


def test_media_outputs_become_artifacts_with_urls(client: TestClient) -> None:
    graph = {"nodes": {"p": {"type": "test.picture", "inputs": {"size": 16, "seed": 3}}},
             "outputs": {"picture": {"from": "p.image"}}}
    run_id = client.post("/api/runs", json={"graph": graph}).json()["id"]
    record = wait_finished(client, run_id)
    output = record["outputs"]["picture"]
    assert output["media_type"] == "image/png" and output["url"] == f"/api/artifacts/{output['artifact']}"
    served = client.get(output["url"])
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(served.content)) as picture:
        assert picture.size == (16, 16) and "nodeforge.graph" in picture.text
    partial = client.get(output["url"], headers={"Range": "bytes=0-7"})
    assert partial.status_code == 206 and partial.content == b"\x89PNG\r\n\x1a\n"
    assert partial.headers["content-range"].startswith("bytes 0-7/")


def test_unknown_and_hostile_artifact_ids_are_404(client: TestClient) -> None:
    for artifact_id in ("0" * 32, "..", "..%2F..%2Fruns.sqlite", "A" * 32, "%2e%2e"):
        assert client.get(f"/api/artifacts/{artifact_id}").status_code == 404
