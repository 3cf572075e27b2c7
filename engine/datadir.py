"""Where state lives: ``--data-dir``, else ``NODEFORGE_DATA_DIR``, else the platform's user data folder."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_data_dir(given: str | Path | None = None) -> Path:
    if given:
        path = Path(given)
    elif os.environ.get("NODEFORGE_DATA_DIR"):
        path = Path(os.environ["NODEFORGE_DATA_DIR"])
    else:
        import platformdirs  # only for the default folder

        path = Path(platformdirs.user_data_dir("nodeforge", appauthor=False))
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
