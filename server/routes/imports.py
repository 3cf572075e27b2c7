"""Importing work from other tools: a ComfyUI workflow (API or UI JSON, or a PNG ComfyUI saved) or an A1111/Forge
PNG -> a nodeforge graph document (nothing is saved; the editor shows it, PUT /api/graphs/{name} keeps it).
A file that is not a workflow, or nodes that do not map, are a 422 whose issues name each node by id and class."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from nodeforge.engine.errors import Issue
from nodeforge.nodes.importers import ImportFailed, ImportResult, import_file
from nodeforge.server.error_responses import ApiError
from nodeforge.server.schemas import ErrorBody

router = APIRouter(prefix="/api", tags=["import"])


class UnmappedNode(BaseModel):
    id: str = Field(description="the node's id in the workflow")
    class_type: str = Field(description="its ComfyUI class")
    reason: str


class Imported(BaseModel):
    document: dict[str, Any] = Field(description="the nodeforge graph document (GET /api/schema/graph)")
    source: str = Field(description="what was read: comfy-api, comfy-ui, comfy-png+ui... or a1111")
    warnings: list[str] = Field(description="what maps only approximately (a sampler, a LoRA's clip weight...)")
    unmapped: list[UnmappedNode] = Field(description="with partial: the nodes left out (empty otherwise)")


@router.post("/import", response_model=Imported, summary="Import a ComfyUI workflow or an A1111 PNG as a graph",
             responses={400: {"model": ErrorBody, "description": "the multipart body cannot be parsed"},
                        422: {"model": ErrorBody, "description": "not a workflow, a malformed one, or nodes that "
                                                                 "do not map (each an issue: node id, class, why)"}})
async def import_workflow(
        file: Annotated[UploadFile, File(description="the workflow .json, or a .png or .webp ComfyUI saved")],
        kind: Annotated[Literal["auto", "comfy", "a1111"], Query(description="auto: read the file to tell")] = "auto",
        partial: Annotated[bool, Query(description="keep what maps when some nodes do not")] = False,
) -> dict[str, Any]:
    try:
        data = await file.read()
    finally:
        await file.close()
    if not data:
        raise ApiError(422, "the file is empty")
    name = (file.filename or "").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    try:
        result: ImportResult = await run_in_threadpool(import_file, data, kind=kind, partial=partial, name=name)
    except ImportFailed as exc:
        issues = [Issue(item.id, item.input, "unmapped_node", f"{item.class_type}: {item.reason}")
                  for item in exc.unmapped]
        raise ApiError(422, exc.summary, issues or None) from None
    return result.to_dict()
