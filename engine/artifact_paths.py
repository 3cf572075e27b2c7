"""Where stored artifacts live: uploaded inputs and run outputs, each a file named by an opaque id.

Layout under the data dir: ``artifacts/files/<id><suffix>`` (``id`` is 32 lower-case hex digits). The server keeps
each artifact's media type and display name in its database; this module is enough for a node that takes an
artifact id (``image.load``) to find the file without it.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

ARTIFACT_ID = re.compile(r"[0-9a-f]{32}")
ARTIFACT_URL = re.compile(r"/api/artifacts/([0-9a-f]{32})")


def new_artifact_id() -> str:
    return secrets.token_hex(16)


def artifact_files(data_dir: Path) -> Path:
    return data_dir / "artifacts" / "files"


def artifact_id_of(text: str) -> str | None:
    """The id in an artifact reference (the bare id or its ``/api/artifacts/<id>`` URL), else None."""
    if ARTIFACT_ID.fullmatch(text):
        return text
    match = ARTIFACT_URL.fullmatch(text)
    return match.group(1) if match else None


def find_artifact(data_dir: Path, reference: str) -> Path | None:
    """The file of an artifact reference, or None when it is not one or no such artifact exists."""
    artifact_id = artifact_id_of(reference)
    if artifact_id is None:
        return None
    matches = [path for path in artifact_files(data_dir).glob(f"{artifact_id}.*") if path.is_file()]
    return matches[0] if len(matches) == 1 else None
