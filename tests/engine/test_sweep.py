"""Sweeps: one saved graph over several values of its inputs, as ordinary cached runs that share their work."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nodeforge.engine.compiler import GraphEnv
from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import EngineError, GraphValidationError, NodeError
from nodeforge.engine.events import NodeFinished
from nodeforge.engine.session import Session
from nodeforge.engine.sweep import MAX_CELLS, MAX_COPIES, count_cells, expand_sweep, read_meta, sweep_cells
from tests.support.testnodes import coordination


def saved_graph(env: GraphEnv, channel: str) -> None:
    """``shared`` reads no swept input, ``first`` reads ``a``, ``second`` reads ``a`` (through ``first``) and
    ``b``: out = a + 5 + b."""
    folder = env.library.folders[0]
    document = {
        "name": "pipeline",
        "inputs": {"a": {"type": "int", "default": 1}, "b": {"type": "int", "default": 10}},
        "nodes": {
            "shared": {"type": "test.add", "inputs": {"x": 5, "delta": 0, "channel": channel}},
            "first": {"type": "test.add", "inputs": {"x": {"input": "a"}, "delta": {"from": "shared.value"},
                                                     "channel": channel}},
            "second": {"type": "test.add", "inputs": {"x": {"from": "first.value"}, "delta": {"input": "b"},
                                                      "channel": channel}}},
        "outputs": {"out": {"from": "second.value"}, "mid": {"from": "first.value"}}}
    (Path(folder) / "pipeline.json").write_text(json.dumps(document), encoding="utf-8")


def sweep(session: Session, axes: Any, mode: str = "product", **extra: Any) -> Any:
    document = parse_document({"nodes": {"s": {"type": "graph.sweep", "inputs": {
        "graph": "pipeline", "axes": axes, "mode": mode, **extra}}},
        "outputs": {"cells": {"from": "s.cells"}, "out": {"from": "s.out"}, "mid": {"from": "s.mid"}}})
    result = session.run(document)
    assert result.record.status == "succeeded", result.record.error
    return result


def test_a_product_sweep_gives_every_cell_in_order_and_shares_upstream_work(session: Session,
                                                                            request: pytest.FixtureRequest) -> None:
    channel = request.node.name
    calls = coordination(channel).calls
    saved_graph(session.env, channel)
    result = sweep(session, {"a": [1, 2, 3], "b": [10, 20]})
    cells = result.values["cells"]
    assert [cell["inputs"] for cell in cells] == [{"a": a, "b": b} for a in (1, 2, 3) for b in (10, 20)]
    assert result.values["out"] == [a + 5 + b for a in (1, 2, 3) for b in (10, 20)]
    assert [cell["outputs"]["out"] for cell in cells] == result.values["out"]
    assert result.values["mid"] == [6, 6, 7, 7, 8, 8]
    assert sorted(call.split("__")[-1] for call in calls) == ["first"] * 3 + ["second"] * 6 + ["shared"]
    assert all(cell["devices"] == ["cpu"] and not cell["cached"] for cell in cells)


def test_a_rerun_is_cached_and_a_changed_value_recomputes_only_its_cells(session: Session,
                                                                         request: pytest.FixtureRequest) -> None:
    channel = request.node.name
    calls = coordination(channel).calls
    saved_graph(session.env, channel)
    sweep(session, {"a": [1, 2, 3], "b": [10, 20]})
    calls.clear()
    again = sweep(session, {"a": [1, 2, 3], "b": [10, 20]})
    assert calls == [] and again.record.nodes["s"].status == "cached"
    changed = sweep(session, {"a": [1, 2, 3], "b": [10, 30]})
    assert sorted(calls) == [f"c{i}__second" for i in (1, 3, 5)]
    cells = changed.values["cells"]
    assert [cell["cached"] for cell in cells] == [True, False, True, False, True, False]
    assert changed.values["out"] == [16, 36, 17, 37, 18, 38]


def test_zip_and_rows_modes(session: Session, request: pytest.FixtureRequest) -> None:
    saved_graph(session.env, "")
    assert sweep(session, {"a": [1, 2], "b": [10, 20]}, "zip").values["out"] == [16, 27]
    rows = sweep(session, [{"a": 3}, {"b": 100}, {"a": 2, "b": 0}], "rows")
    assert rows.values["out"] == [3 + 5 + 10, 1 + 5 + 100, 2 + 5 + 0]
    assert [cell["inputs"] for cell in rows.values["cells"]] == [{"a": 3}, {"b": 100}, {"a": 2, "b": 0}]


def test_other_graph_inputs_pass_through(session: Session) -> None:
    saved_graph(session.env, "")
    assert sweep(session, {"a": [1, 2]}, b=1000).values["out"] == [1006, 1007]


def test_an_axis_that_is_not_an_input_of_the_graph_is_a_validation_issue(session: Session) -> None:
    saved_graph(session.env, "")
    with pytest.raises(GraphValidationError) as caught:
        sweep(session, {"a": [1], "colour": ["red"]})
    assert [(issue.node, issue.input) for issue in caught.value.issues] == [("s", "axes")]
    assert "'colour' is not an input of graph 'pipeline' (its inputs: a, b)" in caught.value.issues[0].message


def test_sweep_cells_refuse_what_is_not_a_sweep() -> None:
    with pytest.raises(NodeError, match="zip takes axes of one length"):
        sweep_cells({"a": [1, 2], "b": [1]}, "zip")
    with pytest.raises(NodeError, match="axes.a must be a non-empty list"):
        sweep_cells({"a": []})
    with pytest.raises(NodeError, match="rows mode takes a non-empty list"):
        sweep_cells({"a": [1]}, "rows")
    with pytest.raises(NodeError, match="mode is one of product, zip, rows"):
        sweep_cells({"a": [1]}, "grid")


def test_the_combined_graph_copies_a_node_once_per_combination_it_reads(session: Session) -> None:
    saved_graph(session.env, "")
    document = session.env.library.load("pipeline")
    combined = expand_sweep(document, sweep_cells({"a": [1, 2], "b": [10, 20, 30]}))
    assert sorted(combined.document.nodes) == sorted(
        ["shared", "c0__first", "c3__first"] + [f"c{i}__second" for i in range(6)])
    assert combined.document.nodes["c4__second"].inputs["x"] == {"from": "c3__first.value"}
    assert combined.own_nodes[1] == ["c1__second"]


def test_a_rows_batch_cut_short_resumes_without_recomputing_finished_rows(
        env: GraphEnv, cache: Any, data_dir: Path, request: pytest.FixtureRequest) -> None:
    """One worker runs the rows one after another; the run is cancelled when the second row's node finishes. The
    next run of the same batch computes only the rows that had not finished, from the shared cache."""
    import threading

    channel = request.node.name
    calls = coordination(channel).calls
    saved_graph(env, channel)
    session = Session(env, cache, workers=1, data_dir=data_dir)
    batch = expand_sweep(env.library.load("pipeline"), sweep_cells([{"b": b} for b in (1, 2, 3, 4)], "rows"))
    cancel = threading.Event()
    finished: list[str] = []

    def listen(event: Any) -> None:
        if isinstance(event.data, NodeFinished) and event.data.node.endswith("__second"):
            finished.append(event.data.node)
            if len(finished) == 2:
                cancel.set()

    first = session.run(batch.document, batch.inputs, listener=listen, cancel=cancel)
    assert first.record.status == "cancelled"
    done = [f"c{i}__second" for i in range(4) if first.record.nodes[f"c{i}__second"].status == "succeeded"]
    assert done == finished == ["c0__second", "c1__second"]
    calls.clear()
    second = session.run(batch.document, batch.inputs)
    assert second.record.status == "succeeded"
    assert sorted(calls) == ["c2__second", "c3__second"]
    assert [second.values[f"c{i}__out"] for i in range(4)] == [7, 8, 9, 10]


def test_a_cell_whose_work_another_cell_did_reports_that_work(session: Session) -> None:
    """Two equal rows: the second has no node of its own (its seconds are counted in the first), but its device
    and state are those of the nodes it uses."""
    saved_graph(session.env, "")
    cells = sweep(session, [{"a": 2}, {"a": 2}], "rows").values["cells"]
    assert cells[1]["seconds"] == 0 and cells[0]["seconds"] > 0
    assert cells[1]["devices"] == cells[0]["devices"] == ["cpu"]
    assert [cell["status"] for cell in cells] == ["succeeded", "succeeded"]
    assert cells[0]["outputs"] == cells[1]["outputs"] == {"out": 17, "mid": 7}


def peak_bytes(call: Callable[[], Any]) -> int:
    """The most memory Python held while ``call`` ran (it must raise NodeError)."""
    tracemalloc.start()
    try:
        with pytest.raises(NodeError):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_oversized_sweep_is_counted_and_refused_before_a_cell_is_built() -> None:
    """A million cells (three axes of 100) cost a few hundred MB when built; refused by arithmetic, they cost
    nothing, and a billion (or a count too large to write) is refused the same way."""
    hundred = list(range(100))
    assert peak_bytes(lambda: sweep_cells({"a": hundred, "b": hundred, "c": hundred})) < 64_000
    with pytest.raises(NodeError, match=r"has 1,000,000,000 cells \(axes of a: 1000, b: 1000, c: 1000 values\); "
                                        "at most 4096 run in one sweep") as caught:
        sweep_cells({name: list(range(1000)) for name in "abc"})
    assert caught.value.input == "axes"
    with pytest.raises(NodeError, match="more than 1,000,000,000,000,000,000 cells"):
        sweep_cells({f"axis{i}": [1, 2] for i in range(5000)})
    long_axes = {"a": list(range(MAX_CELLS + 1)), "b": list(range(MAX_CELLS + 1))}
    assert peak_bytes(lambda: sweep_cells(long_axes, "zip")) < 64_000
    rows = [{"a": i} for i in range(MAX_CELLS + 1)]
    assert peak_bytes(lambda: sweep_cells(rows, "rows")) < 64_000
    assert count_cells({"a": hundred[:64], "b": hundred[:64]}) == MAX_CELLS
    assert count_cells([{"a": 1}] * 3, "rows") == 3 and count_cells({"a": [1, 2], "b": [3, 4]}, "zip") == 2


def test_a_sweep_that_would_copy_too_many_nodes_is_refused_before_copying() -> None:
    """Within the cap on cells a graph of many nodes that read the swept input would still multiply: the
    combined graph's size (cells x copied nodes) is checked before anything is copied."""
    chain = {f"n{i}": {"type": "text.template", "inputs": {"template": "{x}", "x": {"input": "x"} if i == 0
                                                           else {"from": f"n{i - 1}.text"}}} for i in range(5)}
    document = parse_document({"name": "chain", "inputs": {"x": {"type": "text", "default": ""}}, "nodes": chain})
    cells = sweep_cells({"x": [str(i) for i in range(MAX_COPIES // 5 + 1)]})
    with pytest.raises(NodeError, match=f"would copy {len(cells) * 5:,} nodes .* at most {MAX_COPIES:,}"):
        expand_sweep(document, cells)
    assert len(expand_sweep(document, cells[:MAX_COPIES // 5]).document.nodes) == MAX_COPIES // 5 * 5


@pytest.mark.parametrize(("raw", "reason"), [
    ([1], "ui.sweep is not an object"),
    ({"outputs": [], "own": [], "uses": []}, "ui.sweep.cells is not a list of input objects"),
    ({"cells": "ab", "outputs": [], "own": [], "uses": []}, "ui.sweep.cells is not a list"),
    ({"cells": [[1]], "outputs": [], "own": [[]], "uses": [[]]}, "ui.sweep.cells is not a list"),
    ({"cells": [{}] * (MAX_CELLS + 1), "outputs": [], "own": [], "uses": []}, "a sweep has at most 4096"),
    ({"cells": [{}], "outputs": {"o": 1}, "own": [[]], "uses": [[]]}, "ui.sweep.outputs is not a list"),
    ({"cells": [{}], "outputs": [["o"]], "own": [[]], "uses": [[]]}, "ui.sweep.outputs is not a list"),
    ({"cells": [{}], "outputs": [], "uses": [[]]}, "ui.sweep.own is not a list of node ids per cell"),
    ({"cells": [{}], "outputs": [], "own": [], "uses": [[]]}, r"ui.sweep.own .* \(1 cells\)"),
    ({"cells": [{}], "outputs": [], "own": [[{"a": 1}]], "uses": [[]]}, "ui.sweep.own is not"),
    ({"cells": [{}], "outputs": [], "own": [[]], "uses": [5]}, "ui.sweep.uses is not"),
])
def test_a_stored_sweep_description_of_the_wrong_shape_is_named(raw: Any, reason: str) -> None:
    """``ui`` is free-form: a document may carry any ``ui.sweep``; reading it says what is wrong."""
    with pytest.raises(EngineError, match=reason):
        read_meta(raw)


def test_a_stored_sweep_description_reads_back() -> None:
    raw = {"graph": ["x"], "cells": [{"a": 1}], "outputs": ["o"], "own": [["c0__n"]], "uses": [["c0__n"]],
           "extra": True}
    assert read_meta(raw) == {"graph": None, "cells": [{"a": 1}], "outputs": ["o"], "own": [["c0__n"]],
                              "uses": [["c0__n"]]}
