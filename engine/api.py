"""The engine in a few lines of Python: load a graph, validate it, run it.

    import nodeforge.engine as nf

    graph = nf.load_graph("graphs/hello.json")
    assert nf.validate(graph) == []
    result = nf.run(graph, {"name": "Ada"})
    print(result.record.status, result.values)

``run`` opens a session for one run; a program that runs many graphs keeps one ``open_session(...)`` (cache,
resident models, devices) and calls ``session.run`` on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.compiler import validate as validate_document
from nodeforge.engine.config import EngineConfig
from nodeforge.engine.datadir import resolve_data_dir
from nodeforge.engine.document import GraphDocument, load_document
from nodeforge.engine.errors import Issue
from nodeforge.engine.previews import Previews
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import RunResult, Session


def load_graph(path: str | Path) -> GraphDocument:
    """A graph document from a JSON file (or a PNG that nodeforge wrote); raises GraphValidationError."""
    return load_document(Path(path))


def environment(graph_folders: tuple[str | Path, ...] = (), plugins: tuple[str | Path, ...] = ()) -> GraphEnv:
    """The installed node types (and plugin folders) with a library of saved graphs for ``graph.call``."""
    return GraphEnv(Registry.discover([Path(folder) for folder in plugins]),
                    GraphLibrary([Path(folder) for folder in graph_folders]))


def validate(document: GraphDocument, env: GraphEnv | None = None) -> list[Issue]:
    """Every issue of a graph (empty when it can run), each naming node, input and reason."""
    return validate_document(document, env or environment())


def open_session(data_dir: str | Path | None = None, *, env: GraphEnv | None = None, cache: bool = True,
                 devices: list[str] | None = None, **options: Any) -> Session:
    """A session on the data dir (``--data-dir``, ``NODEFORGE_DATA_DIR`` or the user's data folder) with its disk
    cache, on ``devices`` (default the CPU); ``options`` are the rest of ``EngineConfig``'s (workers, vram_budget,
    memory_mode, backend, address, policy, limits). ``session.close()`` closes its cache."""
    folder = resolve_data_dir(data_dir)
    config = EngineConfig(data_dir=folder, devices=",".join(devices or ["cpu"]), cache=cache, **options)
    return Session.open(config, env or environment((folder / "graphs",)))


def run(document: GraphDocument, inputs: Mapping[str, Any] | None = None, *, data_dir: str | Path | None = None,
        out_dir: str | Path | None = None, previews: Previews | None = None, **options: Any) -> RunResult:
    """Run a graph once in a new session (cache on disk, outputs in memory unless ``out_dir`` is given; step
    previews to ``previews``' sink when given, e.g. ``Previews(FolderSink(path))``)."""
    session = open_session(data_dir, **options)
    try:
        return session.run(document, inputs, out_dir=Path(out_dir) if out_dir else None, previews=previews)
    finally:
        session.close()
