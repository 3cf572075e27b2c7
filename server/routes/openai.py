"""An OpenAI-compatible surface over the local LLM models: ``GET /v1/models``, ``GET /v1/models/{id}`` and
``POST /v1/chat/completions`` (streamed as ``chat.completion.chunk`` server-sent events ending with ``[DONE]`` when
``stream`` is true). A completion is an ``llm.generate`` run of this server, queued like the media endpoints' runs
(``server/media_runs.py``): it takes a device slot like any graph node, shows in the run history with its node record
and events, and is cached (a seeded request asked before is answered from the cache). A stream carries the node's
text deltas as they are generated. Errors use OpenAI's shape, ``{"error": {"message", "type", "code", "param"}}``
(the error handlers and the guard write it for every ``/v1`` path), so OpenAI clients report them properly."""

import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from nodeforge.engine.events import NodeProgress
from nodeforge.server.chat import ChatUnavailable
from nodeforge.server.error_responses import ApiError, openai_error
from nodeforge.server.event_hub import HEARTBEAT
from nodeforge.server.media_runs import finish_run, media_models, media_unavailable, one_node_graph, queue_graph
from nodeforge.server.routes.deps import RuntimeDep
from nodeforge.server.runtime import Runtime
from nodeforge.server.schemas import OpenAIErrorBody
from nodeforge.server.streams import SSE_HEADERS, run_events

router = APIRouter(prefix="/v1", tags=["openai"])


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; parameters it does not list are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=500)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1, description="only one choice is generated")
    stream: bool = False
    stream_options: dict[str, Any] | None = Field(None, description='{"include_usage": true} adds a last chunk '
                                                                      "with token counts")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelCards(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


CHAT_GRAPH = "openai-chat"
# The request parameter behind each llm.generate input, for error messages and ``param``.
CHAT_PARAMS = {"prompt": "messages", "max_new_tokens": "max_tokens"}


def _turns(body: ChatCompletionRequest) -> list[dict[str, str]]:
    """The conversation as llm.generate's turns, refused here (before a stream starts) where the node would
    refuse it: text only; ``developer`` is a system message to a chat template, and the system messages that open
    the conversation are one system turn."""
    turns: list[dict[str, str]] = []
    for index, message in enumerate(body.messages):
        if isinstance(message.content, list):
            if any(part.type != "text" for part in message.content):
                raise ApiError(400, "only text content parts are supported", param=f"messages[{index}].content")
            text = "".join(part.text or "" for part in message.content)
        else:
            text = message.content or ""
        role = "system" if message.role == "developer" else message.role
        if role == "system" and len(turns) == 1 and turns[0]["role"] == "system":
            turns[0]["content"] += "\n\n" + text
            continue
        if role == "tool" or (role == "system" and turns):
            reason = "tool messages are not supported (this endpoint makes no tool calls)" if role == "tool" \
                else "a system or developer message comes only at the start of the conversation"
            raise ApiError(400, f"messages[{index}]: {reason}", param=f"messages[{index}].role")
        turns.append({"role": role, "content": text})
    return turns


def _generate_inputs(body: ChatCompletionRequest) -> dict[str, Any]:
    """llm.generate's inputs for the request: the whole conversation as its messages and no prompt of its own;
    OpenAI's defaults where the request leaves a value out (sampling at 1.0, as many tokens as the context holds,
    and a seed drawn by the run and recorded there)."""
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    return {"prompt": "", "messages": _turns(body), "model": body.model,
            "max_new_tokens": body.max_completion_tokens or body.max_tokens or 0,
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "seed": -1 if body.seed is None else body.seed, "stop": stop}


MODEL_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": OpenAIErrorBody, "description": "no model of that name can answer now (code model_not_found)"}}


def _card(runtime: Runtime, name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(runtime.started_at), "owned_by": "nodeforge"}


@router.get("/models", response_model=ModelCards, summary="The local models that can answer now (OpenAI format)")
def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    """LLMs first, then image models, voices and recognizers (``/v1/images``, ``/v1/audio``). Only models on this
    machine: tiny ones, shipped ones whose package is installed, aliases of a local path or of a Hub model in the
    local cache. A Hub id that would first download (online) answers but is not listed."""
    names = list(dict.fromkeys([*runtime.chat.models(), *media_models(runtime)]))
    return {"object": "list", "data": [_card(runtime, name) for name in names]}


@router.get("/models/{model_id:path}", response_model=ModelCard, summary="One model, when it can answer now",
            responses=MODEL_NOT_FOUND)
async def retrieve_model(model_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    problem = await run_in_threadpool(runtime.chat.unavailable, model_id)
    if problem is not None and await run_in_threadpool(media_unavailable, runtime, model_id) is not None:
        raise ApiError(404, problem, code="model_not_found")  # the chat reason: media names are rarely asked for
    return _card(runtime, model_id)


@router.post("/chat/completions", summary="Chat completion with a local LLM (OpenAI format, streaming too)",
             responses={200: {"content": {"text/event-stream": {}}, "description": "a chat.completion, or with "
                                                                                     "stream its chunks as SSE"},
                        400: {"model": OpenAIErrorBody, "description": "the model failed on the request, or "
                                                                        "a message it cannot take (param names it)"},
                        429: {"model": OpenAIErrorBody, "description": "the run queue is full"},
                        503: {"model": OpenAIErrorBody, "description": "the server is shutting down"},
                        **MODEL_NOT_FOUND})
async def chat_completions(body: ChatCompletionRequest, request: Request, runtime: RuntimeDep) -> Any:
    inputs = _generate_inputs(body)
    try:
        await run_in_threadpool(runtime.chat.check, body.model)
    except ChatUnavailable as exc:
        raise ApiError(404, str(exc), code="model_not_found", param="model") from None
    params = {**CHAT_PARAMS, "max_new_tokens": "max_completion_tokens" if body.max_completion_tokens else "max_tokens"}
    document = one_node_graph(CHAT_GRAPH, "llm.generate", inputs, ("text", "usage"))
    run_id = await queue_graph(runtime, document, params=params)
    if body.stream:
        usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_stream(runtime, run_id, body.model, usage, params),
                                 media_type="text/event-stream", headers=SSE_HEADERS)
    finished = await finish_run(runtime, run_id, request.is_disconnected, params)
    answer = finished.outputs
    return {"id": f"chatcmpl-{run_id}", "object": "chat.completion", "created": int(time.time()),
            "model": body.model, "choices": [{"index": 0, "message": {"role": "assistant", "content": answer["text"]},
                                              "finish_reason": _finish_reason(answer["usage"])}],
            "usage": _usage(answer["usage"])}


def _finish_reason(usage: dict[str, Any]) -> str:
    return "length" if usage.get("finish_reason") == "length" else "stop"


def _usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _run_events(runtime: Runtime, run_id: str) -> AsyncIterator[dict[str, Any] | bytes]:
    """The run's events from its start, ending with ``run.finished``, and the heartbeat comment while nothing
    happens (a queued run, a model loading: it keeps the client's connection open through proxies). Read through
    the run's own event stream, which replays what was stored before this listener came (the run may have
    started, or ended, by then)."""
    async for frame in run_events(runtime, run_id, 0):
        if frame == HEARTBEAT:
            yield frame
        for line in frame.splitlines():
            if line.startswith(b"data: "):
                yield json.loads(line[6:])


async def _stream(runtime: Runtime, run_id: str, model: str, usage: bool,
                  params: dict[str, str]) -> AsyncIterator[bytes]:
    """A chunk per text delta of the node's progress; then what the deltas lacked of the run's text (all of it
    when the answer came from the cache), the finish reason and the usage. A client that goes away before the end
    cancels the run."""
    created = int(time.time())

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else []
        data = {"id": f"chatcmpl-{run_id}", "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **extra}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    ended = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        streamed = ""
        async for event in _run_events(runtime, run_id):
            if isinstance(event, bytes):
                yield event
                continue
            delta = event.get("delta") if event.get("kind") == NodeProgress.kind else None
            if delta:
                streamed += delta
                yield chunk({"content": delta})
        try:
            answer = (await finish_run(runtime, run_id, params=params)).outputs
        except ApiError as exc:
            ended = True
            failure = openai_error(exc.status, exc.detail, exc.code, exc.param)
            yield f"data: {json.dumps(failure, ensure_ascii=False)}\n\n".encode()
        else:
            ended = True
            text = str(answer["text"])
            if len(text) > len(streamed) and text.startswith(streamed):
                yield chunk({"content": text[len(streamed):]})
            yield chunk({}, _finish_reason(answer["usage"]))
            if usage:
                yield chunk(None, usage=_usage(answer["usage"]))
        yield b"data: [DONE]\n\n"
    finally:
        if not ended:
            runtime.cancel(run_id)
