"""The CLI's live table: streamed text is rebuilt from the progress events' deltas."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from nodeforge.engine.cli.progress import TAIL, ProgressDisplay
from nodeforge.engine.events import EventEmitter, NodeProgress, NodesCached, NodeStarted


def shown(feed: list[dict[str, Any]]) -> str:
    """The table as printed after the events in ``feed`` (node ``llm``)."""
    printed = io.StringIO()
    console = Console(file=printed, width=240, color_system=None)
    display = ProgressDisplay({"llm": "llm.generate"}, console)
    emitter = EventEmitter("run", display.listen)
    with display:
        emitter.emit(NodeStarted(node="llm", node_type="llm.generate", device="cpu"))
        for fields in feed:
            emitter.emit(NodeProgress(node="llm", **fields))
    return printed.getvalue().splitlines()[-2]


def test_deltas_join_into_the_text_and_a_long_one_shows_its_tail() -> None:
    pieces = ["Foxes ", "are ", "clever", "."]
    row = shown([{"step": i, "total": 4, "delta": piece} for i, piece in enumerate(pieces, 1)]
                + [{"step": 5, "total": 5}])
    assert row.rstrip().endswith("Foxes are clever.")
    words = [f"w{i:03d} " for i in range(40)]
    row = shown([{"step": i, "delta": word} for i, word in enumerate(words, 1)])
    assert row.rstrip().endswith("".join(words)[-TAIL:].rstrip()) and "w000" not in row


def test_a_status_text_replaces_the_last_one() -> None:
    row = shown([{"step": 1, "total": 2, "text": "inner: started"}, {"step": 2, "total": 2, "text": "inner: done"}])
    assert row.rstrip().endswith("inner: done") and "started" not in row


def test_one_event_marks_every_cached_node() -> None:
    printed = io.StringIO()
    display = ProgressDisplay({"a": "text.value", "b": "text.join", "c": "text.value"},
                              Console(file=printed, width=240, color_system=None))
    with display:
        EventEmitter("run", display.listen).emit(NodesCached(nodes=("a", "b")))
    rows = {line.split()[0]: line.split()[2] for line in printed.getvalue().splitlines()[-4:-1]}
    assert rows == {"a": "cached", "b": "cached", "c": "queued"}
