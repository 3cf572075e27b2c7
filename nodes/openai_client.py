"""Where and how the ``openai:<model>`` nodes talk to an OpenAI-compatible server (OpenAI, vLLM, llama.cpp,
LocalAI, nodeforge serve...): the settings and one POST with the server's errors turned into NodeErrors.

Standard library only. Where to connect comes from the environment (``NODEFORGE_OPENAI_BASE_URL``, else
``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``; key ``NODEFORGE_OPENAI_API_KEY``, else
``OPENAI_API_KEY``; ``NODEFORGE_OPENAI_TIMEOUT`` seconds), else from an ``[openai]`` table (``base_url``,
``api_key``, ``timeout``) in ``<data dir>/models.toml``. Every error is a NodeError on the ``model`` input: the
node's error then names the node, the input and what the server said.
"""

from __future__ import annotations

import json
import os
import tomllib
import urllib.error
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nodeforge.engine.errors import NodeError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PREFIX = "openai:"


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str | None
    timeout: float

    @property
    def is_openai(self) -> bool:
        """OpenAI's own API, which refuses parameters it does not know (other servers ignore or use them)."""
        return self.base_url.startswith(DEFAULT_BASE_URL)


def remote_name(model: str) -> str | None:
    """The server's model name of ``openai:<model>`` (possibly empty), or None for a local model name."""
    return model.removeprefix(PREFIX).strip() if model.startswith(PREFIX) else None


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


@dataclass(frozen=True)
class Reply:
    """A successful answer: its media type (without parameters) and its bytes."""

    media_type: str
    body: bytes

    def json(self, what: str) -> Any:
        """The body as JSON; a NodeError saying what came instead when it is not."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise NodeError(f"the server sent {self.media_type or 'an unknown type'} where {what} (JSON) was "
                            f"expected: {looks_like(self.body)}", input="model") from None


@contextmanager
def opened(where: Endpoint, path: str, body: bytes, content_type: str, accept: str, model: str) -> Iterator[Any]:
    """The open response of ``POST <base><path>``; HTTP, connection and timeout errors become NodeErrors on
    ``model`` with the server's own message."""
    headers = {"Content-Type": content_type, "Accept": accept}
    if where.api_key:
        headers["Authorization"] = f"Bearer {where.api_key}"
    import urllib.request  # http.client and ssl: imported when a request is made, not with the node catalogue

    request = urllib.request.Request(f"{where.base_url}{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=where.timeout) as response:
            yield response
    except urllib.error.HTTPError as exc:
        raise NodeError(f"{where.base_url} answered {exc.code} for model '{model}': {error_text(exc)}",
                        input="model") from None
    except urllib.error.URLError as exc:
        raise NodeError(f"cannot reach the OpenAI-compatible server at {where.base_url} ({exc.reason}); set "
                        "NODEFORGE_OPENAI_BASE_URL", input="model") from None
    except TimeoutError:
        raise NodeError(f"{where.base_url} did not answer within {where.timeout:g} s (NODEFORGE_OPENAI_TIMEOUT)",
                        input="model") from None


def post(where: Endpoint, path: str, model: str, *, json_body: Mapping[str, Any] | None = None,
         fields: Mapping[str, str] | None = None, file: tuple[str, str, bytes] | None = None,
         accept: str = "application/json") -> Reply:
    """One POST, JSON or multipart (``fields`` plus ``file`` = (name, media type, bytes) as the ``file`` part),
    read whole."""
    if json_body is not None:
        body, content_type = json.dumps(dict(json_body)).encode(), "application/json"
    else:
        body, content_type = multipart(fields or {}, file)
    with opened(where, path, body, content_type, accept, model) as response:
        media_type = str(response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        return Reply(media_type, response.read())


def multipart(fields: Mapping[str, str], file: tuple[str, str, bytes] | None) -> tuple[bytes, str]:
    """A multipart/form-data body (RFC 7578) and its content type."""
    boundary = f"nodeforge-{uuid.uuid4().hex}"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    if file is not None:
        filename, media_type, data = file
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                     f"Content-Type: {media_type}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def message(error: Any) -> str:
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)


def error_text(exc: urllib.error.HTTPError) -> str:
    """The server's message from an error answer: OpenAI's ``{"error": {"message"}}``, else the body's start."""
    try:
        payload = exc.read().decode("utf-8", "replace")
    except OSError:
        return exc.reason or ""
    try:
        return message(json.loads(payload).get("error", payload))
    except (ValueError, AttributeError):
        return payload.strip()[:300] or str(exc.reason)


def looks_like(data: bytes) -> str:
    """What unexpected bytes are, for an error message: the start of a text, or a size."""
    head = data[:160].decode("utf-8", "replace")
    if head.isascii():
        return " ".join(head.split())[:160] or "an empty body"
    return f"{len(data)} bytes of binary data"
