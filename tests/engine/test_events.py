"""Typed events: one class per kind, and the shape that travels (``Event.to_dict``) and is stored."""

from __future__ import annotations

from typing import get_args

from nodeforge.engine.events import (
    EVENT_DATA,
    NODE_STATUS,
    Event,
    EventData,
    EventEmitter,
    EventKind,
    ModelLoaded,
    NodeProgress,
    RunFinished,
    event_data,
    status_changes,
)
from nodeforge.server.event_log import run_event


def emitted(*data: EventData) -> list[Event]:
    events: list[Event] = []
    emitter = EventEmitter("r1", events.append)
    for item in data:
        emitter.emit(item)
    return events


def test_every_kind_has_its_class() -> None:
    assert set(EVENT_DATA) == set(get_args(EventKind))
    assert all(cls.kind == kind for kind, cls in EVENT_DATA.items())


def test_the_wire_shape_leaves_out_what_a_kind_does_not_carry() -> None:
    loaded, progress = emitted(ModelLoaded(model="tiny/sd", device="cpu", seconds=0.25, node="image"),
                               NodeProgress(node="image", step=2, total=4))
    assert list(loaded.to_dict()) == ["kind", "run", "seq", "at", "node", "device", "seconds", "model"]
    assert loaded.to_dict() | {"at": 0} == {"kind": "model.loaded", "run": "r1", "seq": 1, "at": 0, "node": "image",
                                            "device": "cpu", "seconds": 0.25, "model": "tiny/sd"}
    assert progress.to_dict() | {"at": 0} == {"kind": "node.progress", "run": "r1", "seq": 2, "at": 0,
                                              "node": "image", "step": 2, "total": 4}


def test_an_event_that_travelled_as_a_dict_is_rebuilt_typed() -> None:
    [event] = emitted(NodeProgress(node="llm", step=3, delta="fox"))
    fields = {key: value for key, value in event.to_dict().items() if key not in ("kind", "run", "seq", "at")}
    assert event_data(event.kind, fields) == NodeProgress(node="llm", step=3, delta="fox")


def test_server_made_events_have_the_engine_shape() -> None:
    event = run_event("r1", 1, RunFinished(status="cancelled", error="cancelled before it started"))
    assert list(event) == ["kind", "run", "seq", "at", "status", "error"]
    assert event["kind"] == "run.finished" and event["status"] == "cancelled"


def test_one_rule_gives_each_node_its_status() -> None:
    assert status_changes("node.started", "a") == [("a", "running")]
    assert status_changes("node.finished", "a") == [("a", "succeeded")]
    assert status_changes("node.failed", "a") == [("a", "failed")]
    assert status_changes("node.skipped", "a") == [("a", "skipped")]
    assert status_changes("nodes.cached", None, ("a", "b")) == [("a", "cached"), ("b", "cached")]
    assert status_changes("node.progress", "a") == []
    assert status_changes("run.finished", None) == []
    assert set(NODE_STATUS) - set(get_args(EventKind)) == {"node.cached"}  # only the pre-0.2 stored kind
