"""Error messages leave the server without its own absolute paths.

Messages are written for the command line, where a path is useful (``no saved graph named 'x' (looked in
/home/me/.local/share/nodeforge/graphs, ...)``). A client of the API has no use for where the server keeps its
files, and should not learn it: at the HTTP boundary each of the server's folders is replaced by what it is
(``<data dir>/graphs``), so the message still says what was meant.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from nodeforge.server.settings import Settings

INSTALL_ROOT = Path(__file__).resolve().parent.parent
_END = r"(?=$|[/\\\s'\",;:)\]}])"


class Redactor:
    """Replaces known folders (longest first, so a folder inside another keeps its own name) in messages."""

    def __init__(self, folders: Iterable[tuple[Path, str]]) -> None:
        spelled: dict[str, str] = {}
        for folder, label in folders:
            for text in (str(folder), os.path.realpath(folder)):
                if len(text) > 1:
                    spelled.setdefault(text.rstrip("/\\"), label)
        ordered = sorted(spelled, key=len, reverse=True)
        self._labels = spelled
        self._pattern = re.compile("|".join(f"{re.escape(text)}{_END}" for text in ordered)) if ordered else None

    def __call__(self, message: str) -> str:
        if self._pattern is None:
            return message
        return self._pattern.sub(lambda match: self._labels[match.group(0)], message)


def server_redactor(settings: Settings) -> Redactor:
    """The folders of one server: its data dir, the example graphs, ``--allow-dir`` and plugin folders, the
    models dir when ``NODEFORGE_MODELS_DIR`` moves it, and the folder nodeforge is installed in."""
    folders = [(settings.data_dir, "<data dir>"), (INSTALL_ROOT, "<nodeforge>")]
    if settings.examples_dir is not None:
        folders.append((settings.examples_dir, "<example graphs>"))
    folders += [(folder, "<allowed folder>") for folder in settings.input_dirs]
    folders += [(folder, "<plugins>") for folder in settings.plugins]
    models = os.environ.get("NODEFORGE_MODELS_DIR")
    if models:
        folders.append((Path(models).expanduser(), "<models dir>"))
    return Redactor(folders)
