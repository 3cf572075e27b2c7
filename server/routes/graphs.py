"""The graph library: list, read, save (validated; 422 lists every issue and nothing is saved) and delete."""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response
from fastapi.responses import JSONResponse

from nodeforge.server.error_responses import ApiError, invalid
from nodeforge.server.library import BadName, GraphMissing, ReadOnly, Unreadable, check_name
from nodeforge.server.routes.deps import RuntimeDep
from nodeforge.server.runtime import Invalid
from nodeforge.server.schemas import GRAPH_NAME, ErrorBody, GraphDocumentBody, GraphList, Saved

router = APIRouter(prefix="/api/graphs", tags=["graphs"])
ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody, "description": "not a valid graph name"},
                                           404: {"model": ErrorBody, "description": "no such graph"}}
Name = Annotated[str, Path(json_schema_extra=GRAPH_NAME)]  # documented; check_name answers 400 (not FastAPI's 422)


def library_error(exc: Exception) -> ApiError:
    if isinstance(exc, BadName):
        return ApiError(400, str(exc))
    if isinstance(exc, GraphMissing):
        return ApiError(404, str(exc))
    if isinstance(exc, ReadOnly):
        return ApiError(403, str(exc))
    return ApiError(409, str(exc))


@router.get("", response_model=GraphList, summary="Saved graphs (the data dir's, then the read-only examples)")
def list_graphs(runtime: RuntimeDep) -> dict[str, Any]:
    return {"graphs": [asdict(info) for info in runtime.graphs.list()]}


@router.get("/{name}", summary="A saved graph document", responses={
    **ERRORS, 200: {"description": "the document; header X-Graph-Readonly tells whether it is an example"},
    409: {"model": ErrorBody, "description": "the stored file is not a JSON object"}})
def read_graph(name: Name, runtime: RuntimeDep) -> JSONResponse:
    try:
        data, readonly = runtime.graphs.read(name)
    except (BadName, GraphMissing, Unreadable) as exc:
        raise library_error(exc) from None
    return JSONResponse(data, headers={"X-Graph-Readonly": str(readonly).lower()})


@router.put("/{name}", response_model=Saved, status_code=201, summary="Validate and save a graph", responses={
    **ERRORS, 200: {"model": Saved, "description": "replaced"}, 201: {"description": "created"},
    422: {"model": ErrorBody, "description": "every issue of the graph; nothing was saved"}})
def save_graph(name: Name, response: Response,
               document: Annotated[GraphDocumentBody, Body()],
               runtime: RuntimeDep) -> dict[str, Any]:
    try:
        check_name(name)
        checked = runtime.check_document({**document, "name": name}, saved_as=name).document
        created = runtime.graphs.save(name, runtime.with_versions(checked))
    except Invalid as exc:
        raise invalid(exc.issues) from None
    except BadName as exc:
        raise library_error(exc) from None
    response.status_code = 201 if created else 200
    return {"name": name, "created": created, "url": f"/api/graphs/{name}"}


@router.delete("/{name}", status_code=204, summary="Delete a saved graph", responses={
    **ERRORS, 403: {"model": ErrorBody, "description": "a read-only example"}})
def delete_graph(name: Name, runtime: RuntimeDep) -> Response:
    try:
        runtime.graphs.delete(name)
    except (BadName, GraphMissing, ReadOnly) as exc:
        raise library_error(exc) from None
    return Response(status_code=204)
