"""One error shape for every failure: ``{"detail": message}``, plus ``issues`` (node, input, code, message) when
a graph, a submission or a request body has problems. FastAPI's own 422s are rewritten into the same shape.

Under ``/v1`` (the OpenAI-compatible surface) errors take OpenAI's shape instead,
``{"error": {"message", "type", "code", "param"}}``, so OpenAI clients show the message. Every message is
redacted on the way out: the server's own folders are named, never located (``server/redact.py``). An exception
nothing expected answers a 500 in the same shapes (the guard catches it, ``unexpected``): its traceback goes to
the server's log under a reference, and the client gets only the reference."""

import logging
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from nodeforge.engine.errors import Issue

V1_PREFIX = "/v1/"
OPENAI_CODES = {400: "invalid_request", 401: "invalid_api_key", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 409: "conflict", 413: "request_too_large", 422: "invalid_request",
                429: "rate_limit_exceeded", 500: "internal_error"}
LOG = logging.getLogger("nodeforge.server")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class ApiError(Exception):
    """An error answer; ``code`` is the OpenAI error code under ``/v1`` (one named after the status otherwise) and
    ``param`` the request field at fault there."""

    def __init__(self, status: int, detail: str, issues: list[Issue] | None = None,
                 headers: dict[str, str] | None = None, code: str | None = None, param: str | None = None) -> None:
        self.status = status
        self.detail = detail
        self.issues = issues
        self.headers = headers
        self.code = code
        self.param = param
        super().__init__(detail)


def invalid(issues: list[Issue], what: str = "the graph") -> ApiError:
    return ApiError(422, f"{what} has {len(issues)} issue(s)", issues)


def openai_error(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body; ``code`` defaults to one named after the status."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "code": code or OPENAI_CODES.get(status), "param": param}}


def is_openai(path: str) -> bool:
    return path.startswith(V1_PREFIX)


def unexpected(path: str, exc: BaseException) -> str:
    """Log an unexpected exception with its traceback under a fresh reference; the message a client gets (no
    exception text: it may hold paths or data)."""
    reference = secrets.token_hex(6)
    LOG.error("unexpected error %s answering %s", reference, path[:200], exc_info=exc)
    return f"an unexpected error in the server (reference {reference}); the server's log has the details"


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route answers at this request's path (asked of each route, so routers nested by
    ``include_router`` answer for their own routes), and OPTIONS; empty when no route has the path."""
    allowed = [method for method in METHODS if any(_answers(route, {**scope, "type": "http", "method": method})
                                                   for route in routes)]
    return [*allowed, "OPTIONS"] if allowed else []


def _answers(route: BaseRoute, scope: Scope) -> bool:
    if isinstance(route, Mount):  # the static files: read only
        return scope["method"] in ("GET", "HEAD") and route.matches(scope)[0] == Match.FULL
    return route.matches(scope)[0] == Match.FULL


def _body(detail: str, issues: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"detail": detail, **({"issues": issues} if issues is not None else {})}


def _redactor(request: Request) -> Callable[[str], str]:
    runtime = getattr(request.app.state, "runtime", None)
    return runtime.redact if runtime is not None else str


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        redact = _redactor(request)
        if is_openai(request.url.path):
            return JSONResponse(openai_error(exc.status, redact(exc.detail), exc.code, exc.param),
                                status_code=exc.status, headers=exc.headers)
        issues = None if exc.issues is None else [
            {**issue.to_dict(), "message": redact(issue.message)} for issue in exc.issues]
        return JSONResponse(_body(redact(exc.detail), issues), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = _redactor(request)(str(exc.detail))
        body = openai_error(exc.status_code, message) if is_openai(request.url.path) else _body(message, None)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues: list[dict[str, Any]] = []
        for err in exc.errors():
            loc = [str(part) for part in err.get("loc", ())]
            issues.append({"node": None, "input": ".".join(loc[1:]) or None, "code": "request",
                           "message": f"{'.'.join(loc)}: {err.get('msg', 'invalid')}"})
        detail = f"the request has {len(issues)} problem(s)"
        if is_openai(request.url.path):
            message = f"{detail}: " + "; ".join(issue["message"] for issue in issues)
            param = issues[0]["input"] if issues else None
            return JSONResponse(openai_error(422, message, param=param), status_code=422)
        return JSONResponse(_body(detail, issues), status_code=422)
