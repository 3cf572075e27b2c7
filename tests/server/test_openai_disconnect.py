"""A client that goes away from an OpenAI endpoint cancels its work: each request is sent on a real socket that is
then closed, and the cancellation is read from the run's record, never from how long anything took.

Runs are queued behind a ``test.gate`` run that holds the server's one run slot, so a request's run is still
queued when its client leaves; one image run is left to start first, to show a running denoise is stopped too.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import PLUGINS, LiveServer, wait_finished, wait_for
from tests.server.test_openai_runs import HeldGeneration

pytest.importorskip("diffusers")
pytest.importorskip("piper")


@dataclasses.dataclass
class Served:
    url: str
    http: httpx2.Client
    runtime: Any
    gates: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shared_models_dir: Path) -> Iterator[Served]:
    gates = tmp_path_factory.mktemp("gates")
    patch = pytest.MonkeyPatch()
    patch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    patch.setenv("NODEFORGE_TEST_GATES", str(gates))
    settings = Settings(data_dir=tmp_path_factory.mktemp("disconnect"), devices="cpu", watch=False,
                        plugins=(PLUGINS,))
    app = create_app(settings)
    try:
        with LiveServer(app) as live, httpx2.Client(base_url=live.url, timeout=120) as http:
            yield Served(live.url, http, app.state.runtime, gates)
    finally:
        patch.undo()


def send(served: Served, path: str, body: bytes, content_type: str = "application/json") -> socket.socket:
    """A POST written on a socket of its own, left open: the client that will go away."""
    address = urllib.parse.urlsplit(served.url)
    connection = socket.create_connection((address.hostname, address.port))
    connection.sendall(f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {content_type}\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return connection


def new_run(served: Served, graph: str, status: str) -> str:
    """The id of the run of ``graph`` (as the endpoint names it) once it has reached ``status``."""
    def found() -> str | None:
        runs = served.http.get("/api/runs").json()["runs"]
        return next((run["id"] for run in runs if run["graph"] == graph and run["status"] == status), None)

    return str(wait_for(found, timeout=120, what=f"a {status} run of {graph}"))


@pytest.fixture
def held(served: Served) -> Iterator[str]:
    """A run holding the server's one run slot until the test ends (its gate file is then written); a new gate
    each time, so the run is not answered from the cache."""
    gate = f"hold-{uuid.uuid4().hex}"
    graph = {"name": "holder", "nodes": {"wait": {"type": "test.gate", "inputs": {"gate": gate}}}}
    run_id = served.http.post("/api/runs", json={"graph": graph}).json()["id"]
    wait_for(lambda: (served.gates / f"{gate}.started").exists(), what="the holding run to start")
    try:
        yield run_id
    finally:
        (served.gates / gate).write_text("open")
        assert wait_finished(served.http, run_id)["status"] == "succeeded"


@pytest.fixture(scope="module")
def spoken(served: Served) -> bytes:
    """A short WAV of speech for the transcription request (made before any run holds the slot)."""
    answer = served.http.post("/v1/audio/speech", json={"model": "piper-joe", "voice": "alloy",
                                                        "input": "Hello there.", "response_format": "wav"})
    assert answer.status_code == 200, answer.text
    return answer.content


def multipart(fields: dict[str, str], file: bytes) -> tuple[bytes, str]:
    boundary = "nodeforge-disconnect-test"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="speech.wav"\r\n'
                 "Content-Type: audio/wav\r\n\r\n".encode() + file + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_running_image_run_is_cancelled_when_its_client_goes(served: Served) -> None:
    body = json.dumps({"model": "tiny/sd", "prompt": "a fox", "size": "64x64", "steps": 500, "seed": 1}).encode()
    connection = send(served, "/v1/images/generations", body)
    run_id = new_run(served, "openai-images", "running")
    wait_for(lambda: served.http.get(f"/api/runs/{run_id}").json()["nodes"]["node"]["status"] == "running",
             timeout=120, what="the image node to start")
    connection.close()
    record = wait_finished(served.http, run_id, timeout=120)
    assert record["status"] == "cancelled" and record["nodes"]["node"]["status"] == "cancelled"


@pytest.mark.usefixtures("held")
@pytest.mark.parametrize("endpoint", ["images", "speech", "transcription", "chat", "chat-stream"])
def test_a_queued_run_is_cancelled_when_its_client_goes(served: Served, spoken: bytes, endpoint: str) -> None:
    if endpoint == "images":
        body, kind = json.dumps({"model": "tiny/sd", "prompt": "x", "size": "64x64", "steps": 2}).encode(), None
        path, graph = "/v1/images/generations", "openai-images"
    elif endpoint == "speech":
        body, kind = json.dumps({"model": "piper-joe", "voice": "joe", "input": "Hello."}).encode(), None
        path, graph = "/v1/audio/speech", "openai-speech"
    elif endpoint == "transcription":
        body, kind = multipart({"model": "whisper-tiny.en"}, spoken)
        path, graph = "/v1/audio/transcriptions", "openai-transcription"
    else:
        body, kind = json.dumps({"model": "tiny/llm", "messages": [{"role": "user", "content": "Hello."}],
                                 "stream": endpoint == "chat-stream"}).encode(), None
        path, graph = "/v1/chat/completions", "openai-chat"
    connection = send(served, path, body, kind or "application/json")
    run_id = new_run(served, graph, "queued")
    connection.close()
    record = wait_finished(served.http, run_id, timeout=60)
    assert (record["status"], record["error"]) == ("cancelled", "cancelled before it started")


@pytest.mark.parametrize("stream", [False, True])
def test_a_chat_completion_is_cancelled_when_its_client_goes(served: Served, stream: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from nodeforge.nodes import llm

    held = HeldGeneration(llm.generate)
    monkeypatch.setattr(llm, "generate", held)
    body = json.dumps({"model": "tiny/llm", "messages": [{"role": "user", "content": "Tell me a story."}],
                       "max_tokens": 200, "stream": stream}).encode()
    connection = send(served, "/v1/chat/completions", body)
    if stream:
        assert connection.recv(65536).startswith(b"HTTP/1.1 200"), "the stream started"
    assert held.first_text.wait(120), "the model produced its first piece of text"
    run_id = new_run(served, "openai-chat", "running")
    cancelled = served.runtime.runner.cancel_event(run_id)
    connection.close()
    assert cancelled.wait(120), "the route cancelled the run"
    held.release.set()
    record = wait_finished(served.http, run_id, timeout=120)
    assert record["status"] == "cancelled" and record["nodes"]["node"]["status"] == "cancelled"
