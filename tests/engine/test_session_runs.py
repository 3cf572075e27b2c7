"""Execution: outputs, partial recompute, failure isolation, cancellation, event order, seeds, concurrency."""

import json
import threading
from typing import Any

import pytest

from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphInputError, GraphValidationError
from nodeforge.engine.events import CACHED_PER_EVENT, Event, NodeProgress, NodesCached, NodeStarted, RunFinished
from nodeforge.engine.session import Session
from tests.support.testnodes import coordination


def doc(nodes: dict[str, Any], **extra: Any):
    return parse_document({"nodes": nodes, **extra})


def chain(length: int, channel: str, delta: int = 1):
    nodes: dict[str, Any] = {"n0": {"type": "test.add", "inputs": {"x": 0, "delta": delta, "channel": channel}}}
    for i in range(1, length):
        nodes[f"n{i}"] = {"type": "test.add", "inputs": {"x": {"from": f"n{i - 1}.value"}, "channel": channel}}
    return doc(nodes, outputs={"result": {"from": f"n{length - 1}.value"}})


def statuses(result) -> dict[str, str]:
    return {node_id: node.status for node_id, node in result.record.nodes.items()}


def test_chain_computes_and_second_run_executes_nothing(session: Session, request) -> None:
    coord = coordination(request.node.name)
    first = session.run(chain(5, request.node.name))
    assert first.record.status == "succeeded"
    assert first.values == {"result": 5}
    assert coord.calls == ["n0", "n1", "n2", "n3", "n4"]
    second = session.run(chain(5, request.node.name))
    assert second.values == {"result": 5}
    assert coord.calls == ["n0", "n1", "n2", "n3", "n4"]
    assert set(statuses(second).values()) == {"cached"}


def test_changing_one_literal_recomputes_that_node_and_descendants_only(session: Session, request) -> None:
    coord = coordination(request.node.name)
    nodes = {"a": {"type": "test.add", "inputs": {"x": 1, "channel": request.node.name}},
             "b": {"type": "test.add", "inputs": {"x": {"from": "a.value"}, "channel": request.node.name}},
             "c": {"type": "test.add", "inputs": {"x": 10, "channel": request.node.name}},
             "d": {"type": "test.add", "inputs": {"x": {"from": "c.value"}, "delta": 1,
                                                  "channel": request.node.name}}}
    session.run(doc(nodes))
    coord.calls.clear()
    nodes["c"]["inputs"]["x"] = 20
    result = session.run(doc(nodes))
    assert sorted(coord.calls) == ["c", "d"]
    assert statuses(result) == {"a": "cached", "b": "cached", "c": "succeeded", "d": "succeeded"}
    assert result.values == {"b.value": 3, "d.value": 22}


def test_cached_intermediate_stops_the_walk(session: Session, request) -> None:
    coord = coordination(request.node.name)
    session.run(chain(3, request.node.name))
    coord.calls.clear()
    longer = chain(4, request.node.name)
    result = session.run(longer)
    assert coord.calls == ["n3"]
    assert statuses(result) == {"n0": "cached", "n1": "cached", "n2": "cached", "n3": "succeeded"}
    assert result.values == {"result": 4}


def test_failure_skips_descendants_and_independent_branch_finishes(session: Session) -> None:
    nodes = {"bad": {"type": "test.fail", "inputs": {"reason": "out of paint"}},
             "after": {"type": "test.add", "inputs": {"x": {"from": "bad.value"}}},
             "later": {"type": "test.add", "inputs": {"x": {"from": "after.value"}}},
             "good": {"type": "test.add", "inputs": {"x": 41}}}
    result = session.run(doc(nodes))
    record = result.record
    assert record.status == "failed"
    assert statuses(result) == {"bad": "failed", "after": "skipped", "later": "skipped", "good": "succeeded"}
    assert record.nodes["bad"].error == "node 'bad' (test.fail), input 'reason': out of paint"
    assert record.nodes["after"].error == "skipped because 'bad' failed"
    assert record.error == record.nodes["bad"].error
    assert result.values == {"good.value": 42}


def test_python_exception_is_named_and_traceback_kept(session: Session) -> None:
    result = session.run(doc({"z": {"type": "test.crash", "inputs": {"x": 0}}}))
    node = result.record.nodes["z"]
    assert node.error == "node 'z' (test.crash): ZeroDivisionError: integer division or modulo by zero"
    assert "Traceback" in node.traceback and "1 // inputs.x" in node.traceback


def test_failed_node_is_not_cached(session: Session, request) -> None:
    nodes = {"bad": {"type": "test.fail"}}
    session.run(doc(nodes))
    assert session.run(doc(nodes)).record.nodes["bad"].status == "failed"


def test_event_order_for_a_small_graph(session: Session) -> None:
    events: list[Event] = []
    nodes = {"a": {"type": "test.add", "inputs": {"x": 1}},
             "b": {"type": "test.add", "inputs": {"x": {"from": "a.value"}}}}
    session.run(doc(nodes), listener=events.append)
    assert [(e.kind, getattr(e.data, "node", None)) for e in events] == [
        ("run.started", None), ("node.started", "a"), ("node.finished", "a"),
        ("node.started", "b"), ("node.finished", "b"), ("run.finished", None)]
    assert [e.seq for e in events] == list(range(1, 7))
    assert events[1].data == NodeStarted(node="a", node_type="test.add", device="cpu")
    assert events[-1].data == RunFinished(status="succeeded")
    cached: list[Event] = []
    session.run(doc(nodes), listener=cached.append)
    assert [(e.kind, getattr(e.data, "nodes", None)) for e in cached] == [
        ("run.started", None), ("nodes.cached", ("a", "b")), ("run.finished", None)]


def test_a_fully_cached_run_lists_its_nodes_in_a_few_small_events(session: Session) -> None:
    size = CACHED_PER_EVENT * 2 + 500
    nodes = {"n0": {"type": "test.add", "inputs": {"x": 1}}}
    nodes.update({f"n{i}": {"type": "test.add", "inputs": {"x": {"from": f"n{i - 1}.value"}}} for i in range(1, size)})
    session.run(doc(nodes))
    events: list[Event] = []
    again = session.run(doc(nodes), listener=events.append)
    cached = [event.data.nodes for event in events if isinstance(event.data, NodesCached)]
    assert [len(ids or ()) for ids in cached] == [CACHED_PER_EVENT, CACHED_PER_EVENT, 500]
    assert [node for ids in cached for node in ids or ()] == list(nodes)
    assert {record.status for record in again.record.nodes.values()} == {"cached"}
    assert [event.kind for event in events] == ["run.started", *["nodes.cached"] * 3, "run.finished"]
    wire = sum(len(json.dumps(event.to_dict(), separators=(",", ":"))) for event in events)
    assert wire < 12 * size


def test_independent_branches_run_at_the_same_time(session: Session, request) -> None:
    coord = coordination(request.node.name)
    coord.barriers["b"] = threading.Barrier(2)
    nodes = {"left": {"type": "test.meet", "inputs": {"channel": request.node.name, "x": 1}},
             "right": {"type": "test.meet", "inputs": {"channel": request.node.name, "x": 2}}}
    result = session.run(doc(nodes))
    assert result.record.status == "succeeded", result.record.error
    arrivals = [call for call in coord.calls[:2]]
    assert sorted(arrivals) == ["left:arrive", "right:arrive"]


def test_cancellation_stops_running_node_and_cancels_the_rest(session: Session, request) -> None:
    coord = coordination(request.node.name)
    coord.events["go"] = threading.Event()
    cancel = threading.Event()
    nodes = {"wait": {"type": "test.wait", "inputs": {"channel": request.node.name}},
             "next": {"type": "test.add", "inputs": {"x": {"from": "wait.value"}}}}
    events: list[Event] = []

    def listen(event: Event) -> None:
        events.append(event)
        if isinstance(event.data, NodeProgress) and event.data.step == 3:
            cancel.set()

    result = session.run(doc(nodes), listener=listen, cancel=cancel)
    assert result.record.status == "cancelled"
    assert statuses(result) == {"wait": "cancelled", "next": "cancelled"}
    assert events[-1].data == RunFinished(status="cancelled", error="the run was cancelled")
    assert not any(isinstance(e.data, NodeStarted) and e.data.node == "next" for e in events)


def test_random_seed_is_drawn_recorded_and_reproducible(session: Session) -> None:
    nodes = {"n": {"type": "test.noise", "inputs": {"seed": -1}},
             "m": {"type": "test.brightness", "inputs": {"image": {"from": "n.image"}}}}
    first = session.run(doc(nodes))
    second = session.run(doc(nodes))
    seed = first.record.seeds["n"]
    assert isinstance(seed, int) and seed >= 0
    assert second.record.seeds["n"] != seed
    assert statuses(second)["n"] == "succeeded"
    nodes["n"]["inputs"]["seed"] = seed
    replay = session.run(doc(nodes))
    assert statuses(replay) == {"n": "cached", "m": "cached"}
    assert replay.values == first.values


def test_graph_inputs_bind_defaults_and_reject_bad_values(session: Session) -> None:
    document = doc({"a": {"type": "test.add", "inputs": {"x": {"input": "start"}}}},
                   inputs={"start": {"type": "int", "default": 4}}, outputs={"out": {"from": "a.value"}})
    assert session.run(document).values == {"out": 5}
    assert session.run(document, {"start": "9"}).values == {"out": 10}
    with pytest.raises(GraphInputError, match="graph input 'start' is int"):
        session.run(document, {"start": "many"})
    with pytest.raises(GraphInputError, match="the graph has no input 'stop'"):
        session.run(document, {"stop": 1})


def test_graph_input_value_checked_against_node_constraints(session: Session) -> None:
    document = doc({"n": {"type": "test.noise", "inputs": {"size": {"input": "size"}, "seed": 1}}},
                   inputs={"size": {"type": "int", "default": 8}})
    with pytest.raises(GraphValidationError) as caught:
        session.run(document, {"size": 0})
    issue = caught.value.issues[0]
    assert (issue.node, issue.input, issue.code) == ("n", "size", "invalid_literal")


def test_list_input_mixes_links_and_literals(session: Session) -> None:
    nodes = {"a": {"type": "text.value", "inputs": {"value": "one"}},
             "j": {"type": "text.join", "inputs": {"texts": [{"from": "a.text"}, "two", {"value": "three"}],
                                                   "separator": "+"}}}
    assert session.run(doc(nodes)).values == {"j.text": "one+two+three"}


def test_unused_branch_is_skipped_when_outputs_are_declared(session: Session) -> None:
    nodes = {"a": {"type": "test.add"}, "unused": {"type": "test.add"}}
    result = session.run(doc(nodes, outputs={"a": {"from": "a.value"}}))
    assert statuses(result) == {"a": "succeeded", "unused": "skipped"}


def test_nodes_use_the_callers_torch_thread_count(session: Session) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            result = session.run(doc({"t": {"type": "test.torch_threads", "inputs": {"x": count}}}))
            assert result.values == {"t.value": count}
    finally:
        torch.set_num_threads(before)
