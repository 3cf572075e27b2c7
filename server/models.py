"""Model names for ``GET /api/models`` and ``GET /v1/models``, read from the registry's model catalogue
(``engine.model_source``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nodeforge.engine.model_source import ModelSource


def known_models(source: ModelSource, data_dir: Path | None,
                 families: Iterable[str] = ()) -> tuple[list[dict[str, Any]], bool]:
    """(entries {name, kind, source, description}, whether a catalogue is installed); ``families`` filters."""
    wanted = set(families)
    entries = [asdict(entry) for entry in source.entries(data_dir) if not wanted or entry.kind in wanted]
    return entries, source.installed
