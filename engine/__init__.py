"""nodeforge engine: typed nodes, graph documents, validation, a content-addressed cache and a parallel session.

The public API, for embedding the engine (``nodeforge.engine.api``)::

    import nodeforge.engine as nf

    result = nf.run(nf.load_graph("graphs/hello.json"), {"name": "Ada"})

Its names load on first use, so importing the engine (and starting the CLI) stays cheap. Importing the engine sets
``OMP_WAIT_POLICY=PASSIVE`` before anything can import torch: busy-waiting OpenMP threads make torch an order of
magnitude slower when another process shares the cores.
"""

import importlib
import os
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_PUBLIC = {
    **dict.fromkeys(("load_graph", "validate", "run", "open_session", "environment"), "api"),
    **dict.fromkeys(("Session", "RunResult"), "session"),
    "FilePolicy": "files", "MediaLimits": "limits",
    **dict.fromkeys(("Previews", "PreviewSink", "PreviewPicture", "FolderSink"), "previews"),
    **dict.fromkeys(("EngineError", "GraphValidationError", "GraphInputError", "NodeError", "Issue"), "errors"),
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'nodeforge.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
