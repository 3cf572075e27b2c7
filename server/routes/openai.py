"""An OpenAI-compatible surface over the local LLM models: ``GET /v1/models``, ``GET /v1/models/{id}`` and
``POST /v1/chat/completions`` (streamed as ``chat.completion.chunk`` server-sent events ending with ``[DONE]`` when
``stream`` is true). Errors use OpenAI's shape, ``{"error": {"message", "type", "code", "param"}}`` (the error
handlers and the guard write it for every ``/v1`` path), so OpenAI clients report them properly."""

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from nodeforge.server.chat import ChatAnswer, ChatCall, ChatFailed, ChatUnavailable
from nodeforge.server.disconnect import unless_gone
from nodeforge.server.errors import ApiError, openai_error
from nodeforge.server.media import media_models, media_unavailable
from nodeforge.server.routes.deps import RuntimeDep
from nodeforge.server.runtime import Runtime
from nodeforge.server.schemas import OpenAIErrorBody
from nodeforge.server.streams import SSE_HEADERS

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


def _call(body: ChatCompletionRequest) -> ChatCall | str:
    """The backend call, or why the request cannot be served."""
    messages = []
    for message in body.messages:
        if isinstance(message.content, list):
            if any(part.type != "text" for part in message.content):
                return "only text content parts are supported"
            text = "".join(part.text or "" for part in message.content)
        else:
            text = message.content or ""
        messages.append({"role": message.role, "content": text})
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    return ChatCall(model=body.model, messages=messages, max_tokens=body.max_completion_tokens or body.max_tokens,
                    temperature=body.temperature, top_p=body.top_p, seed=body.seed, stop=stop)


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
                                                                        "non-text content"},
                        **MODEL_NOT_FOUND})
async def chat_completions(body: ChatCompletionRequest, request: Request, runtime: RuntimeDep) -> Any:
    call = _call(body)
    if isinstance(call, str):
        raise ApiError(400, call)
    try:
        await run_in_threadpool(runtime.chat.check, call)
    except ChatUnavailable as exc:
        raise ApiError(404, str(exc), code="model_not_found") from None
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_stream(runtime, call, completion_id, usage), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    cancel = threading.Event()
    try:
        answer = await unless_gone(run_in_threadpool(runtime.chat.complete, call, None, cancel),
                                   request.is_disconnected, cancel.set)
    except ChatUnavailable as exc:
        raise ApiError(404, str(exc), code="model_not_found") from None
    except ChatFailed as exc:
        raise ApiError(400, str(exc)) from None
    finally:
        cancel.set()
    return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": call.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": answer.finish_reason}], "usage": _usage(answer)}


def _stream_error(runtime: Runtime, exc: Exception) -> dict[str, Any]:
    """The error chunk that ends a stream which had already started (a 200 went out), in OpenAI's shape."""
    if isinstance(exc, ChatUnavailable):
        return openai_error(404, runtime.redact(str(exc)), "model_not_found")
    if isinstance(exc, ChatFailed):
        return openai_error(400, runtime.redact(str(exc)))
    return openai_error(500, "internal error")


def _usage(answer: ChatAnswer) -> dict[str, int]:
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens}


async def _stream(runtime: Runtime, call: ChatCall, completion_id: str, usage: bool) -> AsyncIterator[bytes]:
    """A chunk per new piece of text; a client that goes away cancels the generation."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()
    created = int(time.time())

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else []
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": call.model,
                "choices": choices, **extra}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    def work() -> None:
        try:
            answer = runtime.chat.complete(call, lambda delta: loop.call_soon_threadsafe(queue.put_nowait,
                                                                                          ("text", delta)), cancel)
            loop.call_soon_threadsafe(queue.put_nowait, ("done", answer))
        except Exception as exc:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    threading.Thread(target=work, name=f"chat-{completion_id[-8:]}", daemon=True).start()
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            kind, value = await queue.get()
            if kind == "error":
                yield f"data: {json.dumps(_stream_error(runtime, value))}\n\n".encode()
                break
            if kind == "text":
                yield chunk({"content": value})
                continue
            yield chunk({}, value.finish_reason)
            if usage:
                yield chunk(None, usage=_usage(value))
            break
        yield b"data: [DONE]\n\n"
    finally:
        cancel.set()
