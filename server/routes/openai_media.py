"""OpenAI's media endpoints over the local models: ``POST /v1/images/generations`` (image.generate),
``POST /v1/audio/speech`` (audio.speech) and ``POST /v1/audio/transcriptions`` (audio.transcribe), each answered by
running that node as a queued run of this server (``server/media_runs.py``). Errors are in OpenAI's shape like the rest
of ``/v1``; parameters OpenAI has and nodeforge does not use (quality, style, instructions...) are accepted and
ignored, and a few it lacks (seed, steps, guidance_scale, negative_prompt) may be added to a request."""

from __future__ import annotations

import base64
import io
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from nodeforge.engine.limits import MediaLimits
from nodeforge.server.artifact_store import UploadRejected
from nodeforge.server.error_responses import ApiError
from nodeforge.server.media_audio import (
    SPEECH_MEDIA_TYPES,
    AudioFormatError,
    SoundTooLarge,
    encode_speech,
    upload_to_wav,
)
from nodeforge.server.media_runs import (
    artifact_bytes,
    finish_run,
    one_node_graph,
    queue_graph,
    refuse_remote,
    run_graph,
)
from nodeforge.server.routes.deps import RuntimeDep
from nodeforge.server.schemas import OpenAIErrorBody

router = APIRouter(prefix="/v1", tags=["openai"])
SIZE = re.compile(r"(\d{1,5})x(\d{1,5})")
DEFAULT_SIZE = (512, 512)
# OpenAI's own voice names: a client must send one; for a local model they mean its default voice
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer",
                           "verse", "marin", "cedar"})
IMAGE_TYPES = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def _errors(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": OpenAIErrorBody, "description": text} for status, text in described.items()}


COMMON = {400: "the node refused a parameter (param names it), or the run failed",
          404: "no local model of that name makes this (code model_not_found)",
          429: "the run queue is full", 503: "the server is shutting down"}


class ImageRequest(BaseModel):
    """OpenAI's images request; ``seed``, ``steps``, ``guidance_scale`` and ``negative_prompt`` are nodeforge's."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=500, description="a local image model: tiny/sd, an alias, a folder")
    prompt: str = Field(min_length=1, max_length=32000)
    n: int = Field(1, ge=1, le=10)
    size: str | None = Field(None, pattern=r"^(auto|\d{1,5}x\d{1,5})$", description="WxH; auto: 512x512")
    response_format: Literal["b64_json", "url"] | None = Field(
        None, description="b64_json (the default) or url: the server's artifact URL (it needs the bearer token "
                          "when the server has one)")
    output_format: Literal["png", "jpeg", "webp"] | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="none: a new seed (recorded in the run)")
    steps: int | None = Field(None, ge=1, le=500)
    guidance_scale: float | None = Field(None, ge=0, le=50)
    negative_prompt: str | None = Field(None, max_length=32000)


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    output_format: str
    size: str


class SpeechRequest(BaseModel):
    """OpenAI's speech request; ``seed`` is nodeforge's (VITS models draw noise)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=500, description="a local voice: piper-joe, espeak, tiny/vits...")
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field("", max_length=200, description="the model's speaker or espeak-ng voice; OpenAI's names "
                                                       "(alloy, nova...) mean the model's default voice")
    response_format: Literal["wav", "mp3", "flac", "opus", "aac", "pcm"] = Field(
        "mp3", description="pcm: 16-bit little-endian mono at 24 kHz")
    speed: float = Field(1.0, ge=0.25, le=4.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class Transcription(BaseModel):
    text: str
    task: str | None = None
    language: str | None = None
    duration: float | None = None
    segments: list[dict[str, Any]] | None = None


def _size(text: str | None) -> tuple[int, int]:
    match = SIZE.fullmatch(text or "auto")
    return (int(match[1]), int(match[2])) if match else DEFAULT_SIZE


@router.post("/images/generations", response_model=ImagesResponse, response_model_exclude_none=True,
             summary="Images from a local diffusion model (OpenAI format)", responses=_errors(COMMON))
async def generate_images(body: ImageRequest, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    refuse_remote(runtime, body.model)
    width, height = _size(body.size)
    _within_pixel_budget(width, height, body.n, runtime.settings.limits)
    inputs: dict[str, Any] = {"prompt": body.prompt, "model": body.model, "width": width, "height": height,
                              "count": body.n, "seed": -1 if body.seed is None else body.seed}
    extras = {"steps": body.steps, "guidance_scale": body.guidance_scale, "negative_prompt": body.negative_prompt}
    inputs.update({name: value for name, value in extras.items() if value is not None})
    finished = await run_graph(runtime, one_node_graph("openai-images", "image.generate", inputs, "image"),
                               disconnected=request.is_disconnected)
    outputs = finished.outputs["image"]
    pictures = outputs if isinstance(outputs, list) else [outputs]
    output_format = body.output_format or "png"
    if body.response_format == "url":
        base = str(request.base_url).rstrip("/")
        data: list[dict[str, Any]] = [{"url": f"{base}{picture['url']}"} for picture in pictures]
    else:
        data = [{"b64_json": await run_in_threadpool(_b64, runtime, picture, output_format)}
                for picture in pictures]
    return {"created": int(time.time()), "data": data, "output_format": "png" if body.response_format == "url"
            else output_format, "size": f"{width}x{height}"}


def _within_pixel_budget(width: int, height: int, count: int, limits: MediaLimits) -> None:
    """A 400 before anything runs when the pictures asked for are, together, over --max-image-pixels: the work
    of a diffusion run grows with every pixel of every picture."""
    budget = limits.max_image_pixels
    if width * height > budget:
        raise ApiError(400, f"size: {width}x{height} is {width * height:,} pixels, over this server's budget of "
                            f"{budget:,} pixels a request (--max-image-pixels)", param="size")
    if width * height * count > budget:
        raise ApiError(400, f"n: {count} pictures of {width}x{height} are {width * height * count:,} pixels, over "
                            f"this server's budget of {budget:,} pixels a request (--max-image-pixels): ask for "
                            f"at most {budget // (width * height)}", param="n")


def _b64(runtime: Any, picture: dict[str, Any], output_format: str) -> str:
    data, _ = artifact_bytes(runtime, picture)
    if output_format != "png":
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGB").save(out, IMAGE_TYPES[output_format])
            data = out.getvalue()
    return base64.b64encode(data).decode("ascii")


@router.post("/audio/speech", summary="Speech from a local voice (OpenAI format)", response_class=Response,
             responses={200: {"content": {media_type: {} for media_type in SPEECH_MEDIA_TYPES.values()},
                              "description": "the sound in response_format"}, **_errors(COMMON)})
async def speak(body: SpeechRequest, request: Request, runtime: RuntimeDep) -> Response:
    refuse_remote(runtime, body.model)
    voice = "" if body.voice.strip().lower() in OPENAI_VOICES else body.voice
    inputs = {"text": body.input, "model": body.model, "voice": voice, "speed": body.speed, "seed": body.seed}
    finished = await run_graph(runtime, one_node_graph("openai-speech", "audio.speech", inputs, "audio"),
                               disconnected=request.is_disconnected)
    wav, _ = await run_in_threadpool(artifact_bytes, runtime, finished.outputs["audio"])
    try:
        sound = await run_in_threadpool(encode_speech, wav, body.response_format)
    except AudioFormatError as exc:
        raise ApiError(400, str(exc)) from None
    return Response(sound, media_type=SPEECH_MEDIA_TYPES[body.response_format])


@router.post("/audio/transcriptions", response_model=Transcription, response_model_exclude_none=True,
             summary="Transcribe speech with a local recognizer (OpenAI format)",
             responses={200: {"content": {"text/plain": {}}, "description": "the transcript (text/plain for "
                                                                             "response_format text)"},
                        **_errors({**COMMON, 400: "not a sound file, or the node refused a parameter",
                                   413: "the file is over the upload limit (--max-upload-mb)"})})
async def transcribe(file: Annotated[UploadFile, File(description="the sound: WAV, MP3, FLAC, Ogg, M4A, WebM...")],
                     model: Annotated[str, Form(min_length=1, max_length=500)], request: Request,
                     runtime: RuntimeDep, language: Annotated[str | None, Form(max_length=20)] = None,
                     prompt: Annotated[str | None, Form(max_length=10000, description="not used")] = None,
                     response_format: Annotated[Literal["json", "text", "verbose_json"], Form()] = "json",
                     temperature: Annotated[float | None, Form(ge=0, le=1, description="not used: decoding is "
                                                                                      "greedy")] = None) -> Any:
    refuse_remote(runtime, model)
    try:
        artifact_id, seconds = await run_in_threadpool(_store_sound, runtime, file)
    finally:
        await file.close()
    inputs = {"audio": {"input": "audio"}, "model": model, "language": language or ""}
    document = one_node_graph("openai-transcription", "audio.transcribe", inputs, "text",
                              {"audio": {"type": "audio"}})
    try:
        run_id = await queue_graph(runtime, document, {"audio": artifact_id})
    except ApiError:
        await run_in_threadpool(_forget_upload, runtime, artifact_id)
        raise
    finished = await finish_run(runtime, run_id, request.is_disconnected)
    text = str(finished.outputs["text"])
    if response_format == "text":
        return PlainTextResponse(text)
    if response_format == "verbose_json":
        return {"text": text, "task": "transcribe", "language": language or "", "duration": seconds,
                "segments": []}
    return {"text": text}


def _forget_upload(runtime: Any, artifact_id: str) -> None:
    """Remove the decoded upload of a request whose run was refused: no run will ever read it."""
    found = runtime.artifacts.open(artifact_id)
    runtime.store.add_artifacts([], drop=[artifact_id])
    if found is not None:
        found[0].unlink(missing_ok=True)


def _store_sound(runtime: Any, file: UploadFile) -> tuple[str, float]:
    """The upload, decoded to a 16 kHz mono WAV, as an audio artifact (its id and length in seconds); a 400 for
    what is not a sound or is over the sound limits, a 413 over the upload limit. The WAV is written to a
    temporary file that is gone afterwards, whatever happens."""
    limit = runtime.settings.max_upload_bytes
    if (file.size or 0) > limit:
        raise ApiError(413, f"the file is larger than the upload limit of {limit} bytes")
    fd, name = tempfile.mkstemp(dir=runtime.artifacts.tmp, suffix=".wav")
    os.close(fd)
    wav = Path(name)
    try:
        try:
            seconds = upload_to_wav(file.file, wav, runtime.settings.limits)
        except SoundTooLarge as exc:
            raise ApiError(400, f"the file cannot be transcribed: {exc}", param="file") from None
        except AudioFormatError as exc:
            raise ApiError(400, f"the file is not a sound this server can read ({exc})", param="file") from None
        with wav.open("rb") as decoded:
            artifact = runtime.artifacts.save_upload(decoded, file.filename, wav.stat().st_size)
    except UploadRejected as exc:
        raise ApiError(400, f"the file cannot be transcribed: {exc}", param="file") from None
    finally:
        wav.unlink(missing_ok=True)
    return artifact.id, round(seconds, 3)
