"""Runs: submit (validated, queued durably, 202), list, read, cancel, and their events as server-sent events."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from nodeforge.engine.cli.compare_page import SERVED_POLICY, compare_html
from nodeforge.engine.errors import EngineError
from nodeforge.engine.events import EVENTS
from nodeforge.engine.sweep import node_states, read_meta, sweep_table
from nodeforge.server.error_responses import ApiError, invalid
from nodeforge.server.idempotency import IdempotencyConflict
from nodeforge.server.library import BadName, GraphMissing, Unreadable
from nodeforge.server.routes.deps import RuntimeDep
from nodeforge.server.routes.graphs import library_error
from nodeforge.server.run_store import QueueFull
from nodeforge.server.runtime import Invalid
from nodeforge.server.schemas import CancelResult, ErrorBody, Queued, RunList, RunRequest, RunStatus, RunView
from nodeforge.server.streams import SSE_HEADERS, all_events, finished_by, run_events

router = APIRouter(prefix="/api", tags=["runs"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "no such run"}}
SSE_DOC: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {}},
                                                   "description": "server-sent events; each data line is one "
                                                                  "event as JSON, of a kind among "
                                                                  f"{', '.join(EVENTS.kinds)}"}}


@router.post("/runs", response_model=Queued, status_code=202, summary="Validate and queue a run", responses={
    400: {"model": ErrorBody, "description": "an empty Idempotency-Key, or not a valid graph name"},
    404: {"model": ErrorBody, "description": "no saved graph of that name"},
    409: {"model": ErrorBody, "description": "the Idempotency-Key was used for a different request, or the saved "
                                             "graph cannot be read"},
    422: {"model": ErrorBody, "description": "every issue of the graph and its inputs; nothing was queued"},
    429: {"model": ErrorBody, "description": "the queue is full"}})
def submit(body: RunRequest, runtime: RuntimeDep, idempotency_key: Annotated[str | None, Header(
        max_length=200, json_schema_extra={"pattern": r"\S"},
        description="retrying with the same key and body returns the same run; the same key with another body is "
                    "refused (409); an empty key is refused (400)")] = None) -> dict[str, Any]:
    if idempotency_key is not None and not idempotency_key.strip():
        raise ApiError(400, "the Idempotency-Key header is empty: send a key (one per request) or no header")
    if body.sweep is not None and body.rows is not None:
        raise ApiError(422, "give sweep or rows, not both: put the swept values in the rows")
    sweep = body.sweep.model_dump() if body.sweep is not None else \
        {"axes": body.rows, "mode": "rows"} if body.rows is not None else None
    try:
        run_id, created = runtime.submit(body.graph, body.inputs, idempotency_key, sweep)
    except Invalid as exc:
        raise invalid(exc.issues, "the submission") from None
    except (BadName, GraphMissing, Unreadable) as exc:
        raise library_error(exc) from None
    except IdempotencyConflict as exc:
        raise ApiError(409, str(exc)) from None
    except QueueFull as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "5"}) from None
    row = None if created else runtime.store.run_row(run_id)  # a new run is queued (it may have started since)
    return {"id": run_id, "status": row["status"] if row else "queued", "created": created,
            "url": f"/api/runs/{run_id}", "events_url": f"/api/runs/{run_id}/events"}


@router.get("/runs", response_model=RunList, summary="Run history, newest first")
def list_runs(runtime: RuntimeDep, status: Annotated[RunStatus | None, Query()] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0
              ) -> RunList:
    runs, total = runtime.store.list_runs(status, limit, offset)
    return RunList(runs=runs, total=total, limit=limit, offset=offset)


@router.get("/runs/{run_id}", response_model=RunView, summary="One run: status, node states, outputs, error",
            responses=NOT_FOUND)
def read_run(run_id: str, runtime: RuntimeDep) -> RunView:
    view = runtime.run_view(run_id)
    if view is None:
        raise ApiError(404, f"no run '{run_id[:64]}'")
    return view


@router.get("/runs/{run_id}/graph", summary="The graph document a run was submitted with",
            responses=NOT_FOUND)
def read_run_graph(run_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    row = runtime.store.run_row(run_id)
    if row is None:
        raise ApiError(404, f"no run '{run_id[:64]}'")
    return json.loads(row["document"])


@router.get("/runs/{run_id}/compare", summary="A sweep's cells side by side: a sortable HTML page",
            response_class=Response, responses={
                200: {"content": {"text/html": {}}, "description": "the comparison page"},
                404: {"model": ErrorBody, "description": "no such run, or it is not a sweep"}})
def compare_run(run_id: str, runtime: RuntimeDep) -> HTMLResponse:
    row = runtime.store.run_row(run_id)
    view = runtime.run_view(run_id)
    if row is None or view is None:
        raise ApiError(404, f"no run '{run_id[:64]}'")
    ui = json.loads(row["document"]).get("ui")
    raw = ui.get("sweep") if isinstance(ui, dict) else None
    if raw is None:
        raise ApiError(404, f"run '{run_id[:64]}' is not a sweep: submit one with \"sweep\" or \"rows\"")
    try:
        meta = read_meta(raw)
    except EngineError as exc:
        raise ApiError(404, f"run '{run_id[:64]}' has no comparison page: {exc}") from None
    table = sweep_table(meta, node_states(view), view.outputs)
    axes = list(dict.fromkeys(name for cell in meta["cells"] for name in cell))
    title = f"{meta['graph'] or 'graph'}: {len(table)} cells, {view.status}"
    return HTMLResponse(compare_html(table, title=title, axes=axes),
                        headers={"Content-Security-Policy": SERVED_POLICY})


@router.post("/runs/{run_id}/cancel", response_model=CancelResult, summary="Cancel a queued or running run",
             responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "the run has already finished"}})
def cancel_run(run_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    outcome = runtime.cancel(run_id)
    if outcome is None:
        raise ApiError(404, f"no run '{run_id[:64]}'")
    status, acted = outcome
    if not acted:
        raise ApiError(409, f"run '{run_id}' has already finished ({status})")
    return {"id": run_id, "status": status}


def _last_id(header: str | None, given: int | None) -> int | None:
    if given is not None:
        return given
    if header is not None and header.strip().lstrip("-").isdigit() and len(header.strip()) < 19:
        return int(header.strip())
    return None


@router.get("/runs/{run_id}/events", summary="A run's events: replayed from the start, then live",
            response_class=StreamingResponse, responses={**SSE_DOC, **NOT_FOUND, 204: {
                "description": "the run has finished and Last-Event-ID (or after) is at or past its last event: "
                               "nothing more will come (an EventSource stops reconnecting)"}})
def stream_run(run_id: str, runtime: RuntimeDep,
               after: Annotated[int | None, Query(ge=-1, le=1 << 60,
                                                  description="replay events after this seq")] = None,
               last_event_id: Annotated[str | None, Header(max_length=40)] = None) -> Response:
    if runtime.store.run_row(run_id) is None:
        raise ApiError(404, f"no run '{run_id[:64]}'")
    since = _last_id(last_event_id, after)
    if since is not None and finished_by(runtime, run_id, since):
        return Response(status_code=204, headers=SSE_HEADERS)
    return StreamingResponse(run_events(runtime, run_id, -1 if since is None else since),
                             media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/events", summary="Every run's events live (and stored ones after ?since=)",
            response_class=StreamingResponse, responses=SSE_DOC)
def stream_all(runtime: RuntimeDep,
               since: Annotated[int | None, Query(ge=0, le=1 << 60, description="also replay stored events after "
                                                                                 "this event id")] = None,
               last_event_id: Annotated[str | None, Header(max_length=40)] = None) -> StreamingResponse:
    return StreamingResponse(all_events(runtime, _last_id(last_event_id, since)),
                             media_type="text/event-stream", headers=SSE_HEADERS)

