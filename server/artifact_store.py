"""Artifacts: uploaded inputs, run outputs and step previews stored as ``artifacts/files/<id><suffix>``, served by
id only.

An upload is streamed to a temporary file with a byte limit, typed from its first bytes and decoded once before
it gets an id. Run outputs are written by the session into ``artifacts/tmp/<run>/`` and then moved into place.
Step previews (kind ``preview``, ``RunPreviews``) are written as they come and linked from ``node.preview`` events
by URL; their number stays bounded. Serving resolves the stored file with realpath and refuses anything outside
``artifacts/files``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO

from nodeforge.engine.artifact_paths import artifact_files, artifact_id_of, find_artifact, new_artifact_id
from nodeforge.engine.errors import GraphInputError
from nodeforge.engine.files import FileAccess, is_within
from nodeforge.engine.limits import media_problem
from nodeforge.engine.previews import PreviewPicture
from nodeforge.server.run_store import Artifact, RunStore
from nodeforge.server.sniff import ACCEPTED, HEAD_BYTES, sniff, verify

CHUNK = 1 << 20
PREVIEWS_KEPT = 3
"""Previews each node keeps while its run goes (older ones are deleted as newer ones come); one after the run."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRejected(ValueError):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class ArtifactStore:
    def __init__(self, data_dir: Path, store: RunStore, access: FileAccess) -> None:
        self.data_dir = data_dir
        self.files = artifact_files(data_dir)
        self.tmp = data_dir / "artifacts" / "tmp"
        self.files.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.store = store
        self.access = access

    def save_upload(self, source: BinaryIO, filename: str | None, limit: int) -> Artifact:
        """Copy an uploaded file in (at most ``limit`` bytes), typed by its content; raises UploadRejected."""
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, suffix=".upload")
        tmp = Path(tmp_name)
        try:
            size = 0
            head = b""
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    if len(head) < HEAD_BYTES:
                        head += chunk[:HEAD_BYTES - len(head)]
                    size += len(chunk)
                    if size > limit:
                        raise UploadRejected(413, f"the upload is larger than the limit of {limit} bytes")
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size == 0:
                raise UploadRejected(422, "the upload is empty")
            sniffed = sniff(head)
            if sniffed is None:
                raise UploadRejected(415, f"unsupported content (accepted: {ACCEPTED}); the type is read from "
                                          "the bytes, not the file name")
            problem = verify(tmp, sniffed, self.access.limits)
            if problem:
                raise UploadRejected(415, problem)
            artifact = _artifact(None, "upload", sniffed.suffix, sniffed.media_type,
                                 _display_name(filename, sniffed.suffix), size)
            os.replace(tmp, self.files / artifact.file)
        finally:
            tmp.unlink(missing_ok=True)
        self.store.add_artifacts([artifact])
        return artifact

    def previews(self, run_id: str) -> RunPreviews:
        """The preview sink of one run (``engine.previews``); ``settle`` it when the run has finished."""
        return RunPreviews(self, run_id)

    def run_folder(self, run_id: str) -> Path:
        return self.tmp / run_id

    def adopt_outputs(self, run_id: str, outputs: dict[str, Any]) -> dict[str, Any]:
        """Move a run's media files into the store; the outputs with ``{"artifact", "url", ...}`` for each."""
        adopted: list[Artifact] = []

        def convert(value: Any) -> Any:
            if isinstance(value, list):
                return [convert(item) for item in value]
            if isinstance(value, dict) and set(value) == {"path", "media_type"}:
                source = Path(value["path"])
                artifact = _artifact(run_id, "output", source.suffix, value["media_type"], source.name,
                                     source.stat().st_size)
                os.replace(source, self.files / artifact.file)
                adopted.append(artifact)
                return describe(artifact)
            if isinstance(value, dict):
                return {key: convert(item) for key, item in value.items()}
            return value

        converted = {name: convert(value) for name, value in outputs.items()}
        if adopted:
            self.store.add_artifacts(adopted)
        shutil.rmtree(self.run_folder(run_id), ignore_errors=True)
        return converted

    def open(self, artifact_id: str) -> tuple[Path, Artifact] | None:
        """The file and record of an artifact, only when it resolves inside the artifacts folder."""
        if artifact_id_of(artifact_id) != artifact_id:
            return None
        artifact = self.store.artifact(artifact_id)
        if artifact is None:
            return None
        path = self.files / artifact.file
        if not path.is_file() or not is_within(path, [self.files]):
            return None
        return path, artifact

    def resolve_input(self, value: str) -> str:
        """The ``media_resolver`` of runs: an artifact id (or its URL) or a file inside the allowed folders."""
        found = find_artifact(self.data_dir, value)
        if found is not None and is_within(found, [self.files]):
            return str(found)
        if artifact_id_of(value) is not None:
            raise GraphInputError(f"no artifact {value} (upload files with POST /api/uploads)")
        path = self.access.find_file(value)
        if path is not None:
            return str(path)
        raise GraphInputError(f"{value[:200]!r} is neither an artifact id (POST /api/uploads) nor a file in the "
                              "folders this server allows")

    def media_problem(self, value: Any, kind: str) -> str | None:
        """Why a media graph input of ``kind`` given to the API cannot be used (checked at submission): not an
        allowed file, or over the media limits by its header."""
        if not isinstance(value, str):
            return "a media input takes an artifact id from POST /api/uploads"
        try:
            path = Path(self.resolve_input(value))
        except GraphInputError as exc:
            return str(exc)
        try:
            too_large = media_problem(kind, path, self.access.limits)
        except Exception as exc:  # noqa: BLE001 - an unreadable header: the run reports the decoder's reason
            return f"{path.name} cannot be read as {kind}: {type(exc).__name__}"
        return f"{path.name}: {too_large}" if too_large else None


class RunPreviews:
    """A run's step previews as artifacts of kind ``preview``. Bounded: while the run goes each node keeps its
    latest ``PREVIEWS_KEPT`` (an older one's file and record go as a newer one is stored, in the same commit), and
    ``settle`` keeps only each node's last one, so a finished run holds one preview per diffusion node. A listener
    replaying the stream later finds the links of dropped previews answering 404; the editor draws the latest."""

    def __init__(self, artifacts: ArtifactStore, run_id: str) -> None:
        self._artifacts = artifacts
        self._run = run_id
        self._kept: dict[str, deque[Artifact]] = {}
        self._lock = threading.Lock()

    def store(self, picture: PreviewPicture) -> str:
        artifact = _artifact(self._run, "preview", picture.suffix, picture.media_type,
                             f"{picture.node}-{picture.step}{picture.suffix}", len(picture.data))
        (self._artifacts.files / artifact.file).write_bytes(picture.data)
        with self._lock:
            kept = self._kept.setdefault(picture.node, deque())
            kept.append(artifact)
            dropped = [kept.popleft() for _ in range(len(kept) - PREVIEWS_KEPT)]
            self._drop(dropped, [artifact])
        return describe(artifact)["url"]

    def settle(self) -> None:
        """The run has finished: keep each node's last preview only."""
        with self._lock:
            dropped = [artifact for kept in self._kept.values() for artifact in list(kept)[:-1]]
            self._drop(dropped)
            self._kept = {node: deque(list(kept)[-1:]) for node, kept in self._kept.items()}

    def _drop(self, dropped: list[Artifact], added: list[Artifact] | None = None) -> None:
        if added or dropped:
            self._artifacts.store.add_artifacts(added or [], drop=[artifact.id for artifact in dropped])
        for artifact in dropped:
            (self._artifacts.files / artifact.file).unlink(missing_ok=True)


def describe(artifact: Artifact) -> dict[str, Any]:
    """How the API shows an artifact."""
    return {"artifact": artifact.id, "url": f"/api/artifacts/{artifact.id}", "media_type": artifact.media_type,
            "filename": artifact.filename, "size": artifact.size}


def _artifact(run: str | None, kind: str, suffix: str, media_type: str, filename: str, size: int) -> Artifact:
    """A new artifact with a fresh id; its file is ``<id><suffix>`` (a suffix of letters and digits only)."""
    artifact_id = new_artifact_id()
    suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""
    return Artifact(artifact_id, run, kind, f"{artifact_id}{suffix}", media_type, filename, size)


def _display_name(filename: str | None, suffix: str) -> str:
    stem = Path(filename or "upload").stem
    stem = _UNSAFE.sub("_", stem).strip("._")[:80] or "upload"
    return f"{stem}{suffix}"
