"""Chat completions from any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, nodeforge serve...).

Standard library only: one streaming POST to ``<base>/chat/completions``, read as server-sent events. Where to
connect comes from the environment (``NODEFORGE_OPENAI_BASE_URL``, else ``OPENAI_BASE_URL``, else
``https://api.openai.com/v1``; key ``NODEFORGE_OPENAI_API_KEY``, else ``OPENAI_API_KEY``), else from an
``[openai]`` table (``base_url``, ``api_key``) in ``<data dir>/models.toml``.
"""

from __future__ import annotations

import json
import os
import tomllib
import urllib.error
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import NodeError
from nodeforge.nodes.llm import GenerateOptions, Generation, TextCallback

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_STOPS = 4


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str | None
    timeout: float


def endpoint(data_dir: Path | None) -> Endpoint:
    """Where to send requests: the environment first, then ``[openai]`` in the user's models.toml."""
    table: Mapping[str, Any] = {}
    if data_dir is not None:
        try:
            table = tomllib.loads((Path(data_dir) / "models.toml").read_text(encoding="utf-8")).get("openai", {})
        except FileNotFoundError:
            pass
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise NodeError(f"models.toml cannot be read: {exc}", input="model") from None
    env = os.environ
    base = env.get("NODEFORGE_OPENAI_BASE_URL") or env.get("OPENAI_BASE_URL") or table.get("base_url")
    key = env.get("NODEFORGE_OPENAI_API_KEY") or env.get("OPENAI_API_KEY") or table.get("api_key")
    timeout = float(env.get("NODEFORGE_OPENAI_TIMEOUT") or table.get("timeout") or 300)
    return Endpoint(str(base or DEFAULT_BASE_URL).rstrip("/"), key, timeout)


def chat_completion(model: str, messages: Sequence[Mapping[str, str]], options: GenerateOptions,
                    on_text: TextCallback | None = None, *, data_dir: Path | None = None) -> Generation:
    """One streamed chat completion; ``on_text(piece, chunks_so_far)`` is called per streamed piece. The token
    counts are the server's own (``stream_options.include_usage`` asks for them in a last chunk); a server that
    sends none gives a Generation that is not ``counted``."""
    if len(options.stop) > MAX_STOPS:
        raise NodeError(f"{len(options.stop)} stop strings given; OpenAI-compatible servers take at most {MAX_STOPS}",
                        input="stop")
    where = endpoint(data_dir)
    body: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages], "stream": True,
                            "max_tokens": options.max_new_tokens, "temperature": options.temperature,
                            "top_p": options.top_p, "seed": options.seed, "stream_options": {"include_usage": True}}
    if options.stop:
        body["stop"] = list(options.stop)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if where.api_key:
        headers["Authorization"] = f"Bearer {where.api_key}"
    import urllib.request  # http.client and ssl: imported when a request is made, not with the node catalogue

    request = urllib.request.Request(f"{where.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=where.timeout) as response:
            return _read_stream(response, on_text)
    except urllib.error.HTTPError as exc:
        raise NodeError(f"{where.base_url} answered {exc.code} for model '{model}': {_error_text(exc)}",
                        input="model") from None
    except urllib.error.URLError as exc:
        raise NodeError(f"cannot reach the OpenAI-compatible server at {where.base_url} ({exc.reason}); set "
                        "NODEFORGE_OPENAI_BASE_URL", input="model") from None
    except TimeoutError:
        raise NodeError(f"{where.base_url} did not answer within {where.timeout:g} s (NODEFORGE_OPENAI_TIMEOUT)",
                        input="model") from None


def _read_stream(response: Any, on_text: TextCallback | None) -> Generation:
    text, chunks, finish = "", 0, "stop"
    usage: Mapping[str, Any] = {}
    for raw in response:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            break
        try:
            event = json.loads(data)
        except ValueError:
            raise NodeError(f"the server sent a malformed stream event: {data[:120]}", input="model") from None
        if event.get("error"):
            raise NodeError(f"the server reported: {_message(event['error'])}", input="model")
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content") or ""
            finish = choice.get("finish_reason") or finish
            if piece:
                text += piece
                chunks += 1
                if on_text is not None:
                    on_text(piece, chunks)
    reason = "length" if finish == "length" else "stop"
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")  # the include_usage chunk
    if isinstance(prompt, int) and isinstance(completion, int):
        return Generation(text, prompt, completion, reason)
    return Generation(text, 0, 0, reason, counted=False)


def _message(error: Any) -> str:
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        payload = exc.read().decode("utf-8", "replace")
    except OSError:
        return exc.reason or ""
    try:
        return _message(json.loads(payload).get("error", payload))
    except (ValueError, AttributeError):
        return payload.strip()[:300] or str(exc.reason)
