"""Chat completions from any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, nodeforge serve...).

One streaming POST to ``<base>/chat/completions``, read as server-sent events; where to connect and how errors
read are shared with the other ``openai:`` nodes (``nodes/openai_client.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import NodeError
from nodeforge.nodes.llm import GenerateOptions, Generation, TextCallback
from nodeforge.nodes.openai_client import endpoint, message, opened

MAX_STOPS = 4


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
                            "temperature": options.temperature, "top_p": options.top_p, "seed": options.seed,
                            "stream_options": {"include_usage": True}}
    if options.max_new_tokens:  # 0: as many as the server's model holds, which it knows and this side does not
        body["max_tokens"] = options.max_new_tokens
    if options.stop:
        body["stop"] = list(options.stop)
    with opened(where, "/chat/completions", json.dumps(body).encode(), "application/json", "text/event-stream",
                model) as response:
        return _read_stream(response, on_text)


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
            raise NodeError(f"the server reported: {message(event['error'])}", input="model")
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
