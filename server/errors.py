"""One error shape for every failure: ``{"detail": message}``, plus ``issues`` (node, input, code, message) when
a graph, a submission or a request body has problems. FastAPI's own 422s are rewritten into the same shape."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from engine.errors import Issue


class ApiError(Exception):
    def __init__(self, status: int, detail: str, issues: list[Issue] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.issues = issues
        self.headers = headers
        super().__init__(detail)


def invalid(issues: list[Issue], what: str = "the graph") -> ApiError:
    return ApiError(422, f"{what} has {len(issues)} issue(s)", issues)


def _body(detail: str, issues: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"detail": detail, **({"issues": issues} if issues is not None else {})}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        issues = [issue.to_dict() for issue in exc.issues] if exc.issues is not None else None
        return JSONResponse(_body(exc.detail, issues), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = []
        for err in exc.errors():
            loc = [str(part) for part in err.get("loc", ())]
            issues.append({"node": None, "input": ".".join(loc[1:]) or None, "code": "request",
                           "message": f"{'.'.join(loc)}: {err.get('msg', 'invalid')}"})
        return JSONResponse(_body(f"the request has {len(issues)} problem(s)", issues), status_code=422)
