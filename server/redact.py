"""What leaves the server carries none of its own absolute paths.

Messages are written for the command line, where a path is useful (``no saved graph named 'x' (looked in
/home/me/.local/share/nodeforge/graphs, ...)``). A client of the API, or another user reading a run, has no use for
where the server keeps its files, its install or its Python, and should not learn it: each of those folders is
replaced by what it is (``<data dir>/graphs``, ``<site-packages>/diffusers/...``), so the message still says what
was meant. The server redacts when it writes (run records, their tracebacks and events are stored clean, so every
route that reads them back is clean too) and at the HTTP boundary for error answers; the CLI keeps full paths for
the local user.
"""

from __future__ import annotations

import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from nodeforge.engine.events import Event
from nodeforge.engine.record import RunRecord
from nodeforge.server.settings import Settings

INSTALL_ROOT = Path(__file__).resolve().parent.parent
_END = r"(?=$|[/\\\s'\",;:)\]}])"
EVENT_TEXT = ("error", "text", "model")
"""The fields of an event that carry the server's words (reasons, warnings, model identities such as
``diffusion:/models/x``); streamed text (``delta``) is the node's output and is left as it was made."""


class Redactor:
    """Replaces known folders (longest first, so a folder inside another keeps its own name) in messages."""

    def __init__(self, folders: Iterable[tuple[Path, str]]) -> None:
        spelled: dict[str, str] = {}
        for folder, label in folders:
            for text in (str(folder), os.path.realpath(folder)):
                if len(text.rstrip("/\\")) > 1:
                    spelled.setdefault(text.rstrip("/\\"), label)
        ordered = sorted(spelled, key=len, reverse=True)
        self._labels = spelled
        self._pattern = re.compile("|".join(f"{re.escape(text)}{_END}" for text in ordered)) if ordered else None

    def __call__(self, message: str) -> str:
        if self._pattern is None:
            return message
        return self._pattern.sub(lambda match: self._labels[match.group(0)], message)

    def event(self, event: Event) -> Event:
        """A run event as it may be stored and streamed: its reasons, warnings and model identities redacted."""
        data: Any = event.data  # any payload class; only the fields it has are replaced
        changed = {name: clean for name in EVENT_TEXT
                   if isinstance(value := getattr(data, name, None), str) and (clean := self(value)) != value}
        return replace(event, data=replace(data, **changed)) if changed else event

    def record(self, record: RunRecord) -> RunRecord:
        """A run record as it may be stored: the run's error, each node's error and traceback redacted (outputs
        are the run's values, left as they are)."""
        if record.error:
            record.error = self(record.error)
        for node in record.nodes.values():
            if node.error:
                node.error = self(node.error)
            if node.traceback:
                node.traceback = self(node.traceback)
        return record


def python_folders() -> list[tuple[Path, str]]:
    """Where this Python lives: the interpreter's prefixes and standard library, the virtual environment,
    site-packages (a traceback through a library names them) and the user's home (caches, ``~/.local``)."""
    folders = [(Path(sys.base_prefix), "<python>"), (Path(sys.base_exec_prefix), "<python>"),
               (Path(sys.prefix), "<venv>" if sys.prefix != sys.base_prefix else "<python>"),
               (Path(sys.exec_prefix), "<venv>" if sys.exec_prefix != sys.base_exec_prefix else "<python>")]
    paths = sysconfig.get_paths()
    folders += [(Path(paths[name]), "<python>") for name in ("stdlib", "platstdlib") if name in paths]
    folders += [(Path(paths[name]), "<site-packages>") for name in ("purelib", "platlib") if name in paths]
    folders += [(Path(folder), "<site-packages>") for folder in site.getsitepackages()]
    folders.append((Path(site.getusersitepackages()), "<site-packages>"))
    folders.append((Path.home(), "~"))
    return folders


def server_redactor(settings: Settings) -> Redactor:
    """The folders of one server: its data dir, the example graphs, ``--allow-dir``, ``--allow-write-dir`` and
    plugin folders, the models dir when ``NODEFORGE_MODELS_DIR`` moves it, the folder nodeforge is installed in,
    and Python's own folders."""
    folders = [(settings.data_dir, "<data dir>"), (INSTALL_ROOT, "<nodeforge>")]
    if settings.examples_dir is not None:
        folders.append((settings.examples_dir, "<example graphs>"))
    folders += [(folder, "<allowed folder>") for folder in settings.input_dirs]
    folders += [(folder, "<writable folder>") for folder in settings.write_dirs]
    folders += [(folder, "<plugins>") for folder in settings.plugins]
    models = os.environ.get("NODEFORGE_MODELS_DIR")
    if models:
        folders.append((Path(models).expanduser(), "<models dir>"))
    return Redactor([*folders, *python_folders()])
