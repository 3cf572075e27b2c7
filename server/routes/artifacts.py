"""Artifacts by id (media type, Content-Disposition, range requests) and uploads typed from their bytes."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from nodeforge.server.artifact_store import UploadRejected, describe
from nodeforge.server.error_responses import ApiError
from nodeforge.server.routes.deps import RuntimeDep
from nodeforge.server.schemas import ErrorBody, Uploaded

router = APIRouter(prefix="/api", tags=["artifacts"])
MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "audio/wav", "video/mp4", "video/webm")


@router.get("/artifacts/{artifact_id}", summary="An uploaded file or a run output", response_class=FileResponse,
            responses={200: {"content": {media_type: {} for media_type in MEDIA_TYPES},
                             "description": "the file; Range requests are answered with 206"},
                       404: {"model": ErrorBody, "description": "no such artifact"}})
def read_artifact(artifact_id: Annotated[str, Path(json_schema_extra={"pattern": "^[0-9a-f]{32}$"})],
                  runtime: RuntimeDep) -> FileResponse:
    found = runtime.artifacts.open(artifact_id)
    if found is None:
        raise ApiError(404, f"no artifact '{artifact_id[:64]}'")
    path, artifact = found
    return FileResponse(path, media_type=artifact.media_type, filename=artifact.filename,
                        content_disposition_type="inline",
                        headers={"Cache-Control": "private, max-age=31536000, immutable"})


@router.post("/uploads", response_model=Uploaded, status_code=201, summary="Upload an input image, audio or video",
             responses={400: {"model": ErrorBody, "description": "the multipart body cannot be parsed"},
                        415: {"model": ErrorBody, "description": "not a supported media file (read from its bytes)"},
                        422: {"model": ErrorBody, "description": "no file part, or an empty file"}})
async def upload(file: Annotated[UploadFile, File(description="the file; its type is read from its content",
                                                 json_schema_extra={"minLength": 1})],
                 runtime: RuntimeDep) -> dict[str, Any]:
    try:
        artifact = await run_in_threadpool(runtime.artifacts.save_upload, file.file, file.filename,
                                           runtime.settings.max_upload_bytes)
    except UploadRejected as exc:
        raise ApiError(exc.status, str(exc)) from None
    finally:
        await file.close()
    return describe(artifact)
