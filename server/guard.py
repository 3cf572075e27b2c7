"""The gate every HTTP request passes: Host and Origin checks, the bearer token, and request body limits.

- Host: on a loopback bind only loopback host names are answered (a DNS-rebinding page cannot reach the API).
- Origin: a browser request from another origin is refused (unless listed in ``allowed_origins``), so a web page
  cannot drive the API of a server on this machine.
- Token: with a token set, every route needs ``Authorization: Bearer <token>``, server-sent events included; the
  static editor files and the API description (``/docs``, ``/openapi.json``) do not.
- Responses carry ``X-Content-Type-Options: nosniff``, the guard's own refusals too; under ``/v1`` those are in
  OpenAI's error shape. A 405 carries ``Allow`` with every method the path takes (a route names only its own).
- Body: ``Content-Length`` above the limit is refused at once; a body without one is counted while it is read.
- OPTIONS is answered here, past the checks above: 204 with ``Allow`` (every method the path takes), 404 for a
  path nothing serves.
- An exception nothing else handled answers a JSON 500 in the route's shape, with nosniff, its traceback logged
  (``errors.unexpected``); once a response has started it can only end the connection.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nodeforge.server.error_responses import allowed_methods, is_openai, openai_error, unexpected
from nodeforge.server.settings import Settings, is_loopback

PUBLIC_PATHS = frozenset({"/", "/index.html", "/favicon.ico", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
UPLOAD_PATHS = frozenset({"/api/uploads", "/v1/audio/transcriptions"})  # files: --max-upload-mb


class BodyTooLarge(HTTPException):
    """Raised while the body is read, so the app's exception handling answers 413 (FastAPI re-raises it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.token = settings.token.encode() if settings.token else None
        self.loopback = is_loopback(settings.host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _reply(scope, send, *refusal)
            return
        if scope["method"] == "OPTIONS":
            await _options(scope, send)
            return
        limit = self.settings.max_upload_bytes if scope["path"] in UPLOAD_PATHS else self.settings.max_body_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await _reply(scope, send, 413, f"the request body is larger than the limit of {limit} bytes")
            return
        await self._forward(scope, receive, send, limit)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, dict[str, str]] | None:
        host = urlsplit(f"//{headers.get('host', '')}").hostname or ""
        if self.loopback and not is_loopback(host):
            return 403, f"host '{host}' is not served (this server answers loopback names only)", {}
        origin = headers.get("origin")
        if origin is not None and origin not in self.settings.allowed_origins:
            parts = urlsplit(origin)
            if parts.netloc != headers.get("host", "") or parts.scheme not in ("http", "https"):
                return 403, "cross-origin requests are refused", {}
        if headers.get("sec-fetch-site") == "cross-site" and origin not in self.settings.allowed_origins:
            return 403, "cross-site requests are refused", {}
        if self.token is not None and not _public(scope["path"]):
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                return 401, "a bearer token is required (Authorization: Bearer <token>)", {
                    "www-authenticate": "Bearer"}
        return None

    async def _forward(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False
        asked = dict(scope)  # as it came in: routing rewrites the scope's paths as it descends

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                if not any(key.lower() == b"x-content-type-options" for key, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                if message["status"] == 405:  # a route names its own methods; the path may take more
                    allowed = ", ".join(allowed_methods(asked["app"].router.routes, asked)).encode()
                    headers = [*((key, value) for key, value in headers if key.lower() != b"allow"),
                               (b"allow", allowed)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, counted, tracking)
        except BodyTooLarge as exc:
            if not started:
                await _reply(scope, send, 413, exc.detail)
        except Exception as exc:
            if started:
                raise
            await _reply(scope, send, 500, unexpected(scope["path"], exc))


async def _options(scope: Scope, send: Send) -> None:
    allowed = allowed_methods(scope["app"].router.routes, scope)
    if not allowed:
        await _reply(scope, send, 404, "Not Found")
        return
    await send({"type": "http.response.start", "status": 204, "headers": [
        (b"allow", ", ".join(allowed).encode()), (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": b""})


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")


async def _reply(scope: Scope, send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    shaped = openai_error(status, message) if is_openai(scope["path"]) else {"detail": message}
    body = json.dumps(shaped).encode()
    raw: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                      (b"x-content-type-options", b"nosniff"),
                      *((key.encode(), value.encode()) for key, value in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
