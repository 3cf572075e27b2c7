"""``openai:<model>`` on image.generate, audio.speech and audio.transcribe against a stand-in server that answers
what a misbehaving one would (JSON where audio belongs, HTML where JSON belongs, an error body), and records the
bytes it was sent: the requests are OpenAI's, and every wrong answer is a clear error on the node's ``model``.
(The real round trip, with nodeforge serve and the official client, is tests/server/test_openai_media.py.)"""

from __future__ import annotations

import base64
import io
import json
import threading
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from PIL import Image as PILImage

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv, validate
from nodeforge.engine.document import parse_document
from nodeforge.engine.events import Event, NodeFinished, NodeStarted
from nodeforge.engine.session import Session
from nodeforge.engine.values import Audio
from nodeforge.nodes.openai_media_backend import read_wav_bytes, wav_bytes


def _png(size: tuple[int, int]) -> str:
    out = io.BytesIO()
    PILImage.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def _tone(rate: int = 16000, seconds: float = 0.5) -> Audio:
    t = torch.arange(int(rate * seconds)) / rate
    return Audio((0.3 * torch.sin(2 * torch.pi * 440 * t)).unsqueeze(0), rate)


class _Stand(BaseHTTPRequestHandler):
    """Answers by model name; keeps each request's path, headers and body."""

    requests: ClassVar[list[dict[str, Any]]] = []
    released: ClassVar[threading.Event] = threading.Event()
    """What the model "held" waits for before it answers."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append({"path": self.path, "type": self.headers["Content-Type"], "body": body,
                              "auth": self.headers.get("Authorization")})
        model = json.loads(body).get("model") if body.startswith(b"{") else None
        if self.path.endswith("/images/generations"):
            if model == "html":
                return self._send(200, "text/html", b"<html>maintenance</html>")
            if model == "bad-picture":
                return self._send(200, "application/json", json.dumps({"data": [{"b64_json": "aGVsbG8="}]}).encode())
            if model == "held":
                self.released.wait(timeout=60)
            if model == "forbidden":
                return self._send(400, "application/json", b'{"error": {"message": "your prompt was refused"}}')
            items = [{"b64_json": _png((48, 32))}, {"b64_json": _png((48, 32))}]
            return self._send(200, "application/json", json.dumps({"created": 1, "data": items}).encode())
        if self.path.endswith("/audio/speech"):
            if model == "json-voice":
                return self._send(200, "application/json", b'{"ok": true}')
            return self._send(200, "audio/wav", wav_bytes(_tone(24000, 0.25)))
        return self._send(200, "application/json", b'{"text": " a transcript "}')

    def _send(self, status: int, media_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stand(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stand)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("NODEFORGE_OPENAI_BASE_URL", base)
    monkeypatch.setenv("NODEFORGE_OPENAI_API_KEY", "sk-stand")
    _Stand.requests.clear()
    _Stand.released.clear()
    yield base
    server.shutdown()
    server.server_close()
    thread.join()


def _one(node_type: str, inputs: dict[str, Any], output: str) -> Any:
    return parse_document({"nodes": {"n": {"type": node_type, "inputs": inputs}},
                           "outputs": {output: {"from": f"n.{output}"}}})


def test_a_remote_picture_holds_no_device_slot_beside_a_local_one(stand: str, env: GraphEnv, cache: ResultCache,
                                                                  data_dir: Path, shared_models_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """On one device, the remote node's server answers only once the local node has finished: were the remote
    node holding the device, the local one could not start before it (and the remote one would give up waiting)."""
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    session = Session(env, cache, workers=4, data_dir=data_dir, devices=["cpu"])
    events: list[Event] = []

    def listen(event: Event) -> None:
        events.append(event)
        if isinstance(event.data, NodeFinished) and event.data.node == "local":
            _Stand.released.set()

    document = parse_document({"nodes": {
        "remote": {"type": "image.generate", "inputs": {"prompt": "x", "model": "openai:held"}},
        "local": {"type": "image.generate", "inputs": {"prompt": "x", "model": "tiny/sd", "steps": 1, "width": 64,
                                                       "height": 64}}}})
    result = session.run(document, listener=listen)
    assert result.record.status == "succeeded", result.record.error
    order = [(type(event.data).__name__, getattr(event.data, "node", None)) for event in events
             if isinstance(event.data, NodeStarted | NodeFinished)]
    assert order.index(("NodeStarted", "remote")) < order.index(("NodeFinished", "local")) \
        < order.index(("NodeFinished", "remote")), order


def test_images_request_and_batch(session: Session, stand: str) -> None:
    result = session.run(_one("image.generate", {"prompt": "a fox", "model": "openai:pictures", "width": 48,
                                                  "height": 32, "count": 2, "seed": 4, "steps": 3}, "image"))
    assert result.record.status == "succeeded", result.record.error
    image = result.values["image"]
    assert tuple(image.tensor.shape) == (2, 3, 32, 48)
    assert image.tensor[0, :, 0, 0].mul(255).round().tolist() == [200, 30, 30]
    sent = _Stand.requests[-1]
    assert sent["path"] == "/v1/images/generations" and sent["auth"] == "Bearer sk-stand"
    assert json.loads(sent["body"]) == {"model": "pictures", "prompt": "a fox", "n": 2, "size": "48x32",
                                        "response_format": "b64_json", "seed": 4, "steps": 3, "guidance_scale": 0.0}


def test_speech_and_transcription_requests(session: Session, stand: str) -> None:
    spoken = session.run(_one("audio.speech", {"text": "Hi there.", "model": "openai:voice", "speed": 1.5},
                               "audio"))
    assert spoken.record.status == "succeeded", spoken.record.error
    assert spoken.values["audio"].sample_rate == 24000 and spoken.values["audio"].tensor.shape == (1, 6000)
    assert json.loads(_Stand.requests[-1]["body"]) == {"model": "voice", "input": "Hi there.", "voice": "alloy",
                                                       "response_format": "wav", "speed": 1.5}
    graph = parse_document({"nodes": {
        "voice": {"type": "audio.speech", "inputs": {"text": "Hi there.", "model": "openai:voice"}},
        "heard": {"type": "audio.transcribe", "inputs": {"audio": {"from": "voice.audio"}, "model": "openai:asr",
                                                         "language": "EN"}}},
        "outputs": {"text": {"from": "heard.text"}}})
    heard = session.run(graph)
    assert heard.record.status == "succeeded", heard.record.error
    assert heard.values["text"] == "a transcript"
    sent = _Stand.requests[-1]
    assert sent["path"] == "/v1/audio/transcriptions" and sent["type"].startswith("multipart/form-data; boundary=")
    body: bytes = sent["body"]
    for field, value in (("model", b"asr"), ("language", b"en"), ("response_format", b"json")):
        assert f'name="{field}"\r\n\r\n'.encode() + value + b"\r\n" in body
    head, _, rest = body.partition(b'name="file"; filename="audio.wav"\r\nContent-Type: audio/wav\r\n\r\n')
    assert rest.startswith(b"RIFF")
    sent_audio = read_wav_bytes(rest[:rest.rindex(b"\r\n--")])
    assert sent_audio.sample_rate == 24000 and sent_audio.tensor.shape == (1, 6000), "the spoken audio, unchanged"


@pytest.mark.parametrize(("node_type", "inputs", "output", "message"), [
    ("image.generate", {"prompt": "x", "model": "openai:html", "width": 64, "height": 64}, "image",
     "sent text/html where an images response (JSON) was expected: <html>maintenance</html>"),
    ("image.generate", {"prompt": "x", "model": "openai:bad-picture", "width": 64, "height": 64}, "image",
     "image 1 from the server is not a picture (hello)"),
    ("image.generate", {"prompt": "x", "model": "openai:forbidden", "width": 64, "height": 64}, "image",
     "answered 400 for model 'forbidden': your prompt was refused"),
    ("audio.speech", {"text": "Hi.", "model": "openai:json-voice"}, "audio",
     'sent application/json where audio was expected: {"ok": true}'),
])
def test_wrong_answers_are_errors_on_model(session: Session, stand: str, node_type: str, inputs: dict[str, Any],
                                           output: str, message: str) -> None:
    result = session.run(_one(node_type, inputs, output))
    assert result.record.status == "failed"
    error = result.record.nodes["n"].error or ""
    assert error.startswith(f"node 'n' ({node_type}), input 'model': ") and message in error, error


def test_static_checks_of_openai_models(session: Session) -> None:
    issues = validate(_one("image.generate", {"prompt": "x", "model": "openai: ", "width": 60, "height": 64,
                                              "loras": [{"model": "style.safetensors", "weight": 1.0}]}, "image"),
                      session.env)
    found = {(issue.node, issue.input) for issue in issues}
    assert found == {("n", "model"), ("n", "loras")}, "width 60 is the server's business, a LoRA is not"
    assert validate(_one("image.generate", {"prompt": "x", "model": "openai:dall-e-3", "width": 1792,
                                            "height": 1024}, "image"), session.env) == []
    assert [(i.input, i.message) for i in validate(_one("audio.speech", {"text": "x", "model": "openai:"}, "audio"),
                                                   session.env)] == [
        ("model", "'openai:' names no remote model: it needs a model name after the colon")]
    assert validate(_one("audio.speech", {"text": "x", "model": "openai:tts-1", "voice": "nova"}, "audio"),
                    session.env) == []
    transcribe = {"audio": {"from": "v.audio"}, "model": "openai:whisper-1"}
    assert validate(parse_document({"nodes": {"v": {"type": "audio.speech", "inputs": {"text": "x"}},
                                              "n": {"type": "audio.transcribe", "inputs": transcribe}}}),
                    session.env) == []


def test_a_wav_in_memory_round_trips() -> None:
    tone = _tone(22050, 0.1)
    back = read_wav_bytes(wav_bytes(tone))
    assert back.sample_rate == 22050 and back.tensor.shape == tone.tensor.shape
    assert back.tensor.sub(tone.tensor).abs().max() < 1 / 32767 + 1e-6
    with wave.open(io.BytesIO(wav_bytes(tone)), "rb") as wav:
        assert (wav.getsampwidth(), wav.getnchannels()) == (2, 1)
