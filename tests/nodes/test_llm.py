"""llm.generate on tiny/llm (a real Llama-layout model with random weights) and on an OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError, NodeError
from nodeforge.engine.events import Event
from nodeforge.engine.session import Session
from nodeforge.nodes.llm import CausalLM, GenerateOptions, chat_messages, generate, load_causal_lm, render_prompt
from nodeforge.nodes.models import build_resolver


@pytest.fixture(autouse=True)
def shared_models(shared_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEFORGE_MODELS_DIR", str(shared_models_dir))


@pytest.fixture
def tiny_lm(data_dir: Path) -> CausalLM:
    return load_causal_lm("tiny/llm", build_resolver().resolve("tiny/llm", data_dir).path, "cpu")


def one_node(inputs: dict[str, Any]) -> Any:
    return parse_document({"nodes": {"llm": {"type": "llm.generate", "inputs": inputs}},
                           "outputs": {"text": {"from": "llm.text"}}})


def test_tokens_stream_as_progress_events_before_the_node_finishes(session: Session) -> None:
    events: list[Event] = []
    result = session.run(one_node({"prompt": "Tell me about foxes", "system": "Be brief.", "max_new_tokens": 12,
                                    "temperature": 0.8, "seed": 5}), listener=events.append)
    assert result.record.status == "succeeded", result.record.error
    kinds = [(e.kind, getattr(e.data, "step", None)) for e in events if getattr(e.data, "node", None) == "llm"]
    progress = [e for e in events if e.kind == "node.progress"]
    finished = next(i for i, e in enumerate(events) if e.kind == "node.finished")
    assert progress and all(events.index(e) < finished for e in progress), kinds
    assert [e.data.step for e in progress][:12] == list(range(1, 13))
    assert all(e.data.total == 12 and e.data.text is None for e in progress)
    assert "".join(e.data.delta or "" for e in progress) == result.values["text"]
    assert result.values["text"].strip() and result.values["text"].isprintable()
    assert max(len(e.data.delta or "") for e in progress) < len(result.values["text"])


def test_usage_counts_the_tokenizers_tokens_of_prompt_and_text(session: Session, tiny_lm: CausalLM) -> None:
    document = parse_document({"nodes": {"llm": {"type": "llm.generate", "inputs": {
        "prompt": "Tell me about foxes", "system": "Be brief.", "max_new_tokens": 12, "temperature": 0}}},
        "outputs": {"text": {"from": "llm.text"}, "usage": {"from": "llm.usage"}}})
    result = session.run(document)
    assert result.record.status == "succeeded", result.record.error
    usage, text = result.values["usage"], result.values["text"]
    tokenizer = tiny_lm.tokenizer
    prompt = render_prompt(tokenizer, chat_messages("Tell me about foxes", "Be brief."))
    assert usage["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert usage["completion_tokens"] == len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + 12
    assert (usage["context_length"], usage["finish_reason"]) == (1024, "length")
    assert usage["seconds"] > 0 and usage["tokens_per_second"] == pytest.approx(12 / usage["seconds"], rel=0.01)


def test_same_seed_same_text_other_seed_other_text(tiny_lm: CausalLM) -> None:
    messages = chat_messages("hello", "system text")
    first = generate(tiny_lm, messages, GenerateOptions(max_new_tokens=16, temperature=0.9, seed=1))
    again = generate(tiny_lm, messages, GenerateOptions(max_new_tokens=16, temperature=0.9, seed=1))
    other = generate(tiny_lm, messages, GenerateOptions(max_new_tokens=16, temperature=0.9, seed=2))
    assert first == again
    assert first.text != other.text


def test_temperature_zero_is_greedy_whatever_the_seed(tiny_lm: CausalLM) -> None:
    messages = chat_messages("hello")
    texts = {generate(tiny_lm, messages, GenerateOptions(max_new_tokens=8, temperature=0.0, seed=s)).text
             for s in (1, 2, 3)}
    assert len(texts) == 1


def test_chat_template_carries_the_system_message(tiny_lm: CausalLM) -> None:
    rendered = render_prompt(tiny_lm.tokenizer, chat_messages("the question", "the rules"))
    assert rendered == "<|system|>the rules<|eos|><|user|>the question<|eos|><|assistant|>"


def test_stop_string_ends_the_text_and_is_never_streamed(tiny_lm: CausalLM) -> None:
    messages = chat_messages("stop test")
    options = GenerateOptions(max_new_tokens=24, temperature=0.8, seed=11)
    full = generate(tiny_lm, messages, options).text
    stop = full[6:8]
    assert len(full) > 8 and stop.strip()
    streamed: list[str] = []
    cut = generate(tiny_lm, messages, replace(options, stop=(stop,)),
                   lambda delta, tokens: streamed.append(delta))
    assert cut.text == full[:full.index(stop)]
    assert cut.finish_reason == "stop"
    assert "".join(streamed) == cut.text


def test_prompt_longer_than_the_context_fails_naming_the_input(session: Session) -> None:
    result = session.run(one_node({"prompt": "fox " * 1500, "max_new_tokens": 4, "seed": 1}))
    node = result.record.nodes["llm"]
    assert node.status == "failed"
    assert "input 'prompt'" in node.error and "1024 tokens of context" in node.error
    assert "Traceback" not in node.error


def test_token_budget_cut_to_the_context_with_a_warning(session: Session) -> None:
    events: list[Event] = []
    result = session.run(one_node({"prompt": "fox " * 900, "max_new_tokens": 250, "temperature": 0, "seed": 1}),
                          listener=events.append)
    assert result.record.status == "succeeded"
    warnings = [e.data.text for e in events if e.kind == "node.warning"]
    assert any("max_new_tokens cut from 250" in (w or "") for w in warnings), warnings


def test_bad_literals_are_reported_before_anything_runs(session: Session) -> None:
    with pytest.raises(GraphValidationError) as caught:
        session.run(parse_document({"nodes": {
            "a": {"type": "llm.generate", "inputs": {"prompt": "x", "max_new_tokens": 1024}},
            "b": {"type": "llm.generate", "inputs": {"prompt": "x", "model": "tiny/wan"}},
            "c": {"type": "llm.generate", "inputs": {"prompt": "x", "model": "openai:"}},
            "d": {"type": "llm.generate", "inputs": {"prompt": "x", "temperature": -1}}}}))
    where = {(issue.node, issue.input) for issue in caught.value.issues}
    assert {("a", "max_new_tokens"), ("b", "model"), ("c", "model"), ("d", "temperature")} <= where
    messages = " ".join(issue.message for issue in caught.value.issues)
    assert "1024 tokens" in messages and "wan model" in messages


class _FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that streams a fixed reply word by word (no such server runs here)."""

    requests: list[dict[str, Any]] = []
    reply = ["Foxes ", "are ", "clever."]

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
        if body["model"] == "forbidden":
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"message": "invalid api key"}}).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, piece in enumerate(self.reply):
            last = i == len(self.reply) - 1
            chunk = {"choices": [{"delta": {"content": piece}, "finish_reason": "stop" if last else None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if (body.get("stream_options") or {}).get("include_usage") and body["model"] != "no-usage":
            usage = {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}  # OpenAI's last chunk
            self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("NODEFORGE_OPENAI_BASE_URL", base)
    monkeypatch.setenv("NODEFORGE_OPENAI_API_KEY", "sk-test")
    _FakeOpenAI.requests.clear()
    yield base
    server.shutdown()
    server.server_close()
    thread.join()


def test_openai_model_streams_from_a_compatible_server(session: Session, openai_server: str) -> None:
    events: list[Event] = []
    result = session.run(one_node({"prompt": "foxes?", "system": "be brief", "model": "openai:gpt-test",
                                    "max_new_tokens": 30, "temperature": 0.2, "seed": 9, "stop": ["END"]}),
                          listener=events.append)
    assert result.values["text"] == "Foxes are clever."
    assert [e.data.delta for e in events if e.kind == "node.progress"] == ["Foxes ", "are ", "clever."]
    sent = _FakeOpenAI.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test" and sent["stream"] is True
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "foxes?"}]
    assert (sent["model"], sent["max_tokens"], sent["seed"], sent["stop"]) == ("gpt-test", 30, 9, ["END"])
    assert sent["stream_options"] == {"include_usage": True}


def test_openai_usage_is_the_servers_count_or_null_when_it_sends_none(session: Session, openai_server: str) -> None:
    def usage(model: str) -> dict[str, Any]:
        result = session.run(parse_document({"nodes": {"llm": {"type": "llm.generate", "inputs": {
            "prompt": "foxes?", "model": model}}}, "outputs": {"usage": {"from": "llm.usage"}}}))
        assert result.record.status == "succeeded", result.record.error
        return result.values["usage"]

    counted, unknown = usage("openai:gpt-test"), usage("openai:no-usage")
    assert {key: counted[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens", "context_length",
                                          "finish_reason")} == {"prompt_tokens": 21, "completion_tokens": 4,
                                                                "total_tokens": 25, "context_length": None,
                                                                "finish_reason": "stop"}
    assert counted["seconds"] > 0 and counted["tokens_per_second"] == pytest.approx(4 / counted["seconds"], rel=0.01)
    assert {key: unknown[key] for key in ("prompt_tokens", "completion_tokens", "total_tokens",
                                          "tokens_per_second")} == dict.fromkeys(
        ("prompt_tokens", "completion_tokens", "total_tokens", "tokens_per_second"))
    assert unknown["seconds"] > 0


def test_openai_errors_are_node_errors_with_the_server_message(openai_server: str, data_dir: Path) -> None:
    from nodeforge.nodes.openai_chat import chat_completion

    with pytest.raises(NodeError, match="answered 401 .* invalid api key"):
        chat_completion("forbidden", chat_messages("x"), GenerateOptions(), data_dir=data_dir)


def test_openai_unreachable_server_says_where_it_tried(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    from nodeforge.nodes.openai_chat import chat_completion

    monkeypatch.setenv("NODEFORGE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(NodeError, match=r"cannot reach .*127\.0\.0\.1:9/v1"):
        chat_completion("m", chat_messages("x"), GenerateOptions(), data_dir=data_dir)


def test_cancel_stops_generation_between_tokens(session: Session) -> None:
    cancel = threading.Event()
    steps: list[int] = []

    def listen(event: Event) -> None:
        if event.kind == "node.progress":
            steps.append(event.data.step or 0)
            if event.data.step == 3:
                cancel.set()

    result = session.run(one_node({"prompt": "go on", "max_new_tokens": 64, "temperature": 0.8, "seed": 2}),
                          listener=listen, cancel=cancel)
    assert result.record.status == "cancelled"
    assert result.record.nodes["llm"].status == "cancelled"
    assert max(steps) == 3


def test_a_new_node_with_its_defaults_validates_on_the_default_model(session: Session) -> None:
    from nodeforge.engine.compiler import validate

    assert validate(one_node({"prompt": "hello"}), session.env) == []


def test_earlier_turns_go_into_the_prompt_in_order(tmp_path: Path, tiny_lm: CausalLM) -> None:
    history = [{"role": "user", "content": "the first question"}, {"role": "assistant", "content": "the answer"}]
    rendered = render_prompt(tiny_lm.tokenizer, chat_messages("the follow-up", "the rules", history))
    order = [rendered.index(text) for text in ("the rules", "the first question", "the answer", "the follow-up")]
    assert order == sorted(order)
    alone = generate(tiny_lm, chat_messages("the follow-up"), GenerateOptions(max_new_tokens=2, temperature=0))
    chat = generate(tiny_lm, chat_messages("the follow-up", "", history), GenerateOptions(max_new_tokens=2,
                                                                                          temperature=0))
    assert chat.prompt_tokens > alone.prompt_tokens


@pytest.mark.parametrize(("messages", "system", "reason"), [
    ([{"role": "user", "text": "hi"}], "", "messages[0] is not"),
    ([{"role": "tool", "content": "hi"}], "", "has role 'tool'"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "", "messages[1] is a system turn"),
    ([{"role": "system", "content": "b"}], "rules", "messages[0] is a system turn"),
])
def test_bad_turns_fail_on_messages_before_generating(messages: object, system: str, reason: str) -> None:
    """A list of objects arrives as a list binding (items may be links), so the turns are checked when the node
    runs, before its model is loaded; a value that is no list at all is refused while validating."""
    from nodeforge.engine.compiler import GraphEnv
    from nodeforge.engine.document import parse_document
    from nodeforge.engine.errors import GraphValidationError
    from nodeforge.engine.registry import Registry
    from nodeforge.engine.saved_graphs import GraphLibrary
    from nodeforge.engine.session import Session

    def document(value: object) -> Any:
        return parse_document({"nodes": {"llm": {"type": "llm.generate", "inputs": {
            "prompt": "hi", "model": "tiny/llm", "system": system, "messages": value}}}})

    session = Session(GraphEnv(Registry.discover(), GraphLibrary([])), None)
    with pytest.raises(GraphValidationError) as caught:
        session.run(document({"role": "user"}))
    assert [(issue.node, issue.input) for issue in caught.value.issues] == [("llm", "messages")]
    record = session.run(document(messages)).record
    assert record.status == "failed"
    error = record.nodes["llm"].error or ""
    assert "input 'messages'" in error and reason in error


def test_an_empty_prompt_answers_the_turns_as_they_stand(session: Session, tiny_lm: CausalLM) -> None:
    """A chat client sends the whole conversation, its last turn included: no turn is added to it."""
    turns = [{"role": "system", "content": "the rules"}, {"role": "user", "content": "the question"},
             {"role": "assistant", "content": "the answer"}, {"role": "user", "content": "the follow-up"}]
    assert chat_messages("", "", turns) == turns
    result = session.run(parse_document({"nodes": {"llm": {"type": "llm.generate", "inputs": {
        "prompt": "", "messages": turns, "max_new_tokens": 4, "temperature": 0}}},
        "outputs": {"text": {"from": "llm.text"}, "usage": {"from": "llm.usage"}}}))
    assert result.record.status == "succeeded", result.record.error
    alone = generate(tiny_lm, turns, GenerateOptions(max_new_tokens=4, temperature=0))
    assert (result.values["text"], result.values["usage"]["prompt_tokens"]) == (alone.text, alone.prompt_tokens)
    empty = session.run(one_node({"prompt": " "})).record
    assert empty.status == "failed" and "the prompt is empty" in (empty.nodes["llm"].error or "")


def test_no_token_budget_generates_until_the_context_is_full(tiny_lm: CausalLM) -> None:
    warnings: list[str] = []
    result = generate(tiny_lm, chat_messages("fox " * 1000), GenerateOptions(max_new_tokens=0, temperature=0),
                      on_warning=warnings.append)
    assert result.finish_reason == "length" and result.prompt_tokens + result.completion_tokens == tiny_lm.context
    assert warnings == [], "nothing was cut: no budget was asked for"


def test_no_token_budget_leaves_max_tokens_to_the_server(session: Session, openai_server: str) -> None:
    result = session.run(one_node({"prompt": "foxes?", "model": "openai:gpt-test", "max_new_tokens": 0}))
    assert result.record.status == "succeeded", result.record.error
    assert "max_tokens" not in _FakeOpenAI.requests[-1]
