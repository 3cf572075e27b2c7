"""A chat completion is an ``llm.generate`` run of the server, driven here by the official ``openai`` client
through a real uvicorn server: the answer is in the run history with its node record and drawn seed, a stream
carries the node's text deltas, a seeded request asked again comes from the cache, and a chat request and a
graph's accelerator node take turns on the one device. Overlap is judged by the order of the stored events and by
holding one side at a barrier, never by how long anything took."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, wait_finished, wait_for

openai = pytest.importorskip("openai")
pytest.importorskip("transformers")
CONVERSATION = [{"role": "system", "content": "be brief"}, {"role": "developer", "content": "answer in English"},
                {"role": "user", "content": "hello there"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "tell me about foxes"}]


class HeldGeneration:
    """``nodes.llm.generate`` that stops after its first piece of text until ``release`` is set: the run is then
    certainly running on its device, and the test decides when it goes on."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner
        self.first_text = threading.Event()
        self.release = threading.Event()

    def __call__(self, lm: Any, messages: Any, options: Any, on_text: Any = None, on_warning: Any = None) -> Any:
        def hold(delta: str, tokens: int) -> None:
            if on_text is not None:
                on_text(delta, tokens)
            if delta and not self.first_text.is_set():
                self.first_text.set()
                assert self.release.wait(120), "the test released the generation"

        return self.inner(lm, messages, options, hold, on_warning)


@dataclasses.dataclass
class Served:
    client: Any
    http: httpx2.Client
    runtime: Any
    gates: Path


@pytest.fixture
def served(settings: Settings, shared_models_dir: Path, gates: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """A server with two run slots on one device: runs may run at once, their accelerator nodes may not."""
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))
    app = create_app(dataclasses.replace(settings, concurrency=2))
    with LiveServer(app) as live, httpx2.Client(base_url=live.url, timeout=120) as http:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="none", max_retries=0, timeout=120)
        yield Served(client, http, app.state.runtime, gates)


def chat_run(served: Served, completion_id: str) -> dict[str, Any]:
    run_id = completion_id.removeprefix("chatcmpl-")
    assert run_id in [run["id"] for run in served.http.get("/api/runs").json()["runs"]]
    return dict(served.http.get(f"/api/runs/{run_id}").json())


def test_the_answer_is_a_run_with_its_node_record(served: Served) -> None:
    answer = served.client.chat.completions.create(model="tiny/llm", messages=CONVERSATION,
                                                   max_completion_tokens=8, temperature=0.9)
    record = chat_run(served, answer.id)
    assert (record["graph"], record["status"]) == ("openai-chat", "succeeded")
    node = record["nodes"]["node"]
    assert (node["type"], node["status"], node["device"]) == ("llm.generate", "succeeded", "cpu")
    assert record["outputs"]["text"] == answer.choices[0].message.content
    assert answer.usage is not None and record["outputs"]["usage"]["completion_tokens"] == \
        answer.usage.completion_tokens <= 8
    drawn = record["seeds"]["node"]
    assert isinstance(drawn, int) and record["inputs"] == {}
    turns = [{"role": "system", "content": "be brief\n\nanswer in English"}, *CONVERSATION[2:]]
    sent = served.http.get(f"/api/runs/{record['id']}/events").text
    assert '"kind":"node.started"' in sent and '"kind":"node.finished"' in sent

    replies = [served.client.chat.completions.create(model="tiny/llm", messages=CONVERSATION,
                                                     max_completion_tokens=8, temperature=0.9, seed=drawn)
               for _ in range(2)]
    assert [reply.choices[0].message.content for reply in replies] == [answer.choices[0].message.content] * 2
    statuses = [chat_run(served, reply.id)["nodes"]["node"]["status"] for reply in replies]
    assert statuses == ["succeeded", "cached"], "the recorded seed reproduces it; asked again, the cache answers"
    sent_inputs = served.http.get(f"/api/runs/{record['id']}/graph").json()["nodes"]["node"]["inputs"]
    assert (sent_inputs["prompt"], sent_inputs["messages"], sent_inputs["seed"]) == ("", turns, -1)


def test_a_stream_carries_the_nodes_deltas(served: Served) -> None:
    chunks = list(served.client.chat.completions.create(
        model="tiny/llm", messages=CONVERSATION[2:], max_tokens=24, temperature=0.9, seed=5, stream=True,
        stream_options={"include_usage": True}))
    pieces = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    record = chat_run(served, chunks[0].id)
    events = served.runtime.store.run_events(record["id"], 0)
    deltas = [event["delta"] for event in events if event["kind"] == "node.progress" and event.get("delta")]
    assert len(pieces) > 1 and pieces == deltas, "a chunk for each delta of the node"
    assert "".join(pieces) == record["outputs"]["text"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == \
        record["outputs"]["usage"]["completion_tokens"]


def test_refusals_before_and_failures_after_a_stream_starts(served: Served) -> None:
    late_system = [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]
    tool = [{"role": "tool", "content": "x"}]
    for messages, param in ((late_system, "messages[1].role"), (tool, "messages[0].role")):
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as refused:
                served.client.chat.completions.create(model="tiny/llm", messages=messages, stream=stream)
            assert refused.value.param == param
    too_long = [{"role": "user", "content": "fox " * 1500}]
    with pytest.raises(openai.BadRequestError) as failed:
        served.client.chat.completions.create(model="tiny/llm", messages=too_long, max_tokens=4)
    assert failed.value.param == "messages" and "1024 tokens of context" in str(failed.value)
    with pytest.raises(openai.APIError, match="1024 tokens of context"):
        list(served.client.chat.completions.create(model="tiny/llm", messages=too_long, max_tokens=4, stream=True))
    with pytest.raises(openai.BadRequestError) as over:
        served.client.chat.completions.create(model="tiny/llm", messages=late_system[:1], max_completion_tokens=2000)
    assert over.value.param == "max_completion_tokens" and "2000 tokens do not fit" in str(over.value)


def events_of(served: Served, run_id: str, kind: str) -> list[int]:
    """The global ids of a run's stored events of ``kind``: their order is the order they happened in."""
    served.runtime.store.barrier()
    return [event_id for event_id, event in served.runtime.store.events_after(0, 100_000)
            if event["run"] == run_id and event["kind"] == kind]


def chat_in_background(served: Served, results: list[Any]) -> threading.Thread:
    def ask() -> None:
        results.append(served.client.chat.completions.create(
            model="tiny/llm", messages=[{"role": "user", "content": f"hello {uuid.uuid4().hex}"}], max_tokens=6))

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread


def running_chat(served: Served) -> str:
    def found() -> str | None:
        runs = served.http.get("/api/runs").json()["runs"]
        return next((run["id"] for run in runs if run["graph"] == "openai-chat" and run["status"] == "running"), None)

    return str(wait_for(found, timeout=120, what="the chat run to be running"))


def test_a_chat_waits_for_a_graph_node_on_its_device(served: Served) -> None:
    """Streamed, so the waiting client is seen to get the heartbeat that keeps its connection open."""
    gate = f"device-{uuid.uuid4().hex}"
    graph = {"nodes": {"wait": {"type": "test.device_gate", "inputs": {"gate": gate}}}}
    graph_run = served.http.post("/api/runs", json={"graph": graph}).json()["id"]
    wait_for(lambda: (served.gates / f"{gate}.started").exists(), what="the graph node to hold the device")
    lines: list[str] = []

    def ask() -> None:
        body = {"model": "tiny/llm", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6,
                "stream": True}
        with served.http.stream("POST", "/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                lines.append(line)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    chat = running_chat(served)
    wait_for(lambda: ": heartbeat" in lines, what="a heartbeat while the chat waits for the device")
    assert served.http.get(f"/api/runs/{chat}").json()["nodes"]["node"]["status"] != "running"
    (served.gates / gate).write_text("open")
    thread.join(120)
    assert [line for line in lines if line][-1] == "data: [DONE]"
    assert wait_finished(served.http, graph_run)["status"] == "succeeded"
    assert events_of(served, graph_run, "node.finished")[-1] < events_of(served, chat, "node.started")[0]


def test_a_graph_node_waits_for_a_chat_on_its_device(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    from nodeforge.nodes import llm

    held = HeldGeneration(llm.generate)
    monkeypatch.setattr(llm, "generate", held)
    results: list[Any] = []
    thread = chat_in_background(served, results)
    assert held.first_text.wait(120), "the chat is generating on the device"
    chat = running_chat(served)
    gate = f"open-{uuid.uuid4().hex}"
    (served.gates / gate).write_text("open")  # it passes at once, when it gets the device
    graph = {"nodes": {"wait": {"type": "test.device_gate", "inputs": {"gate": gate}}}}
    graph_run = served.http.post("/api/runs", json={"graph": graph}).json()["id"]
    wait_for(lambda: served.http.get(f"/api/runs/{graph_run}").json()["status"] == "running",
             what="the graph run to start")
    assert not (served.gates / f"{gate}.started").exists(), "the graph node waits while the chat generates"
    held.release.set()
    thread.join(120)
    assert results and wait_finished(served.http, graph_run)["status"] == "succeeded"
    assert events_of(served, chat, "node.finished")[-1] < events_of(served, graph_run, "node.started")[0]
