"""Import work grows linearly with the workflow: the lines of importer code run for a workflow of thousands of nodes
are counted (a deterministic measure, unlike time) and doubling the workflow must about double them. The old
import searched names, places, model inputs and warnings from the start for each node: 3 MB took 21 s."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import nodeforge.nodes.importers as importers
from nodeforge.nodes.importers import import_comfy
from tests.nodes.import_support import many_pipelines, scale_chain

FOLDER = str(Path(importers.__file__).resolve().parent)


def lines_run(call: Callable[[], Any]) -> int:
    """How many lines of the importers' own code ``call`` runs."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(FOLDER) else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


def test_thousands_of_pipelines_import_in_linear_work() -> None:
    """300 and 600 pipelines of 7 nodes (2,100 and 4,200 nodes; 0.5 and 0.9 MB), every node at one place, each
    pipeline with its own model file, warning and SaveImage: the old import ran 2.9 times the lines for twice the
    nodes, and the ratio grew with the size."""
    small, large = (json.dumps(many_pipelines(count)).encode() for count in (300, 600))
    assert len(import_comfy(large).document["nodes"]) == 1200
    ratio = lines_run(lambda: import_comfy(large)) / lines_run(lambda: import_comfy(small))
    assert ratio < 2.2, f"twice the workflow ran {ratio:.2f} times the lines"


def test_a_long_chain_imports_in_linear_work() -> None:
    """A chain of image operations, laid out one column a link: its depths are found once each."""
    ratio = lines_run(lambda: import_comfy(scale_chain(2000))) / lines_run(lambda: import_comfy(scale_chain(1000)))
    assert ratio < 2.2, f"twice the chain ran {ratio:.2f} times the lines"
