"""Watches the graph folders and the plugin folders (watchfiles): a graph edited on disk is announced to
``/api/events`` listeners; a changed plugin folder is imported again, and a broken plugin is reported, not fatal.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from nodeforge.engine.files import is_within

if TYPE_CHECKING:
    from nodeforge.server.runtime import Runtime

log = logging.getLogger("nodeforge.server")


class Reloader:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.graph_folders = [folder for folder in runtime.graphs.folders() if folder.is_dir()]
        self.plugin_folders = [folder for folder in runtime.settings.plugins if folder.is_dir()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reloader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        import watchfiles

        folders = [*self.graph_folders, *self.plugin_folders]
        try:
            for changes in watchfiles.watch(*folders, stop_event=self._stop, debounce=200, step=50,
                                            raise_interrupt=False):
                self.apply({Path(path) for _, path in changes})
        except Exception:
            log.exception("the file watcher stopped")

    def apply(self, changed: set[Path]) -> None:
        """React to a set of changed files."""
        if any(is_within(path, self.plugin_folders) for path in changed if "__pycache__" not in path.parts):
            self.runtime.reload_plugins()  # which logs each plugin that cannot be loaded
        graphs = sorted({path.stem for path in changed if path.suffix == ".json"
                         and is_within(path, self.graph_folders)})
        if graphs:
            self.runtime.graphs.forget()
            self.runtime.events.announce({"kind": "library.changed", "graphs": graphs})
