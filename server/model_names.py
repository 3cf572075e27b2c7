"""Model names for ``GET /api/models`` and ``GET /v1/models``, read from the registry's model catalogue
(``engine.model_source``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nodeforge.engine.model_source import ModelSource


def known_models(source: ModelSource, data_dir: Path | None, families: Iterable[str] = (),
                 redact: Callable[[str], str] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """(entries {name, kind, source, description}, whether a catalogue is installed); ``families`` filters.
    ``redact`` (the server's redactor) cleans what a listing shows a client: an alias's source names its target,
    which may be a file under the server's folders."""
    wanted = set(families)
    entries = [asdict(entry) for entry in source.entries(data_dir) if not wanted or entry.kind in wanted]
    if redact is not None:
        entries = [{key: redact(value) if isinstance(value, str) else value for key, value in entry.items()}
                   for entry in entries]
    return entries, source.installed
