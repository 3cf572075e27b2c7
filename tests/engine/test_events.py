"""Typed events: one class per kind, the table of kinds built from the classes, and the shape that travels
(``Event.to_dict``) and is stored."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest

from nodeforge.engine.events import (
    EVENTS,
    NODE_STATUS,
    Event,
    EventData,
    EventEmitter,
    EventTypes,
    ModelLoaded,
    ModelOffloaded,
    NodeCached,
    NodeFailed,
    NodeFinished,
    NodePreview,
    NodeProgress,
    NodesCached,
    NodeSkipped,
    NodeStarted,
    NodeWarning,
    Payload,
    RunFinished,
    RunQueued,
    RunStarted,
    status_changes,
)
from nodeforge.server.event_log import run_event

ONE_OF_EACH: list[EventData] = [
    RunQueued(), RunStarted(), NodeStarted(node="a", node_type="text.value", device="cpu:0"),
    NodeProgress(node="a", step=2, total=4, text="half", delta="fox"),
    NodePreview(node="a", step=1, total=4, link="/api/artifacts/x", width=64, height=32),
    NodesCached(nodes=("b", "c")), NodeCached(node="d", node_type="text.join"),
    NodeFinished(node="a", node_type="text.value", device="cpu:0", seconds=0.5),
    NodeFailed(node="e", node_type="text.join", error="boom"), NodeSkipped(node="f", node_type="text.join", error=None),
    NodeWarning(node="a", node_type="text.value", device="cpu:0", text="resized"),
    ModelLoaded(node="a", device="cpu:0", text="from cpu", seconds=0.25, model="tiny/sd"),
    ModelOffloaded(device="cpu:0", text="dropped", model="tiny/sd"), RunFinished(error="no", status="failed"),
]


def emitted(*data: EventData) -> list[Event]:
    events: list[Event] = []
    emitter = EventEmitter("r1", events.append)
    for item in data:
        emitter.emit(item)
    return events


def test_a_listener_matching_on_classes_gets_the_typed_payloads_in_order() -> None:
    seen: list[str] = []

    def listen(event: Event) -> None:
        match event.data:
            case NodeStarted(node=node, device=device):
                seen.append(f"{event.seq} {node} on {device}")
            case NodeProgress(node=node, step=step, total=total):
                seen.append(f"{event.seq} {node} {step}/{total}")
            case NodeFinished(node=node, seconds=seconds):
                seen.append(f"{event.seq} {node} in {seconds}")
            case RunFinished(status=status):
                seen.append(f"{event.seq} {status}")

    emitter = EventEmitter("r1", listen)
    for data in [RunStarted(), NodeStarted(node="a", node_type="t", device="cpu"),
                 NodeProgress(node="a", step=1, total=2), NodeProgress(node="a", step=2, total=2),
                 NodeFinished(node="a", node_type="t", device="cpu", seconds=0.5), RunFinished(status="succeeded")]:
        emitter.emit(data)
    assert seen == ["2 a on cpu", "3 a 1/2", "4 a 2/2", "5 a in 0.5", "6 succeeded"]


def test_the_kinds_come_from_the_classes() -> None:
    assert sorted(EVENTS.kinds) == sorted(type(data).kind for data in ONE_OF_EACH)
    assert all(EVENTS.classes[cls.kind] is cls for cls in map(type, ONE_OF_EACH))
    assert dict(NODE_STATUS) == {"node.started": "running", "nodes.cached": "cached", "node.cached": "cached",
                                 "node.finished": "succeeded", "node.failed": "failed", "node.skipped": "skipped"}


def test_a_new_event_class_takes_part_by_its_declaration_alone() -> None:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class NodeRetried(Payload):
        kind: ClassVar[str] = "node.retried"
        node_status: ClassVar[str | None] = "running"
        node: str
        attempt: int

    table = EventTypes(*EVENTS.classes.values(), NodeRetried)
    assert "node.retried" in table.kinds and table.node_status["node.retried"] == "running"
    assert table.data("node.retried", {"node": "a", "attempt": 2}) == NodeRetried(node="a", attempt=2)
    assert table.fields(NodeRetried(node="a", attempt=2)) == {"node": "a", "attempt": 2}
    assert "node.retried" not in EVENTS.kinds  # the engine's own table is built once, from its classes
    with pytest.raises(ValueError, match="same kind"):
        EventTypes(RunStarted, RunStarted)


def test_every_kind_round_trips_through_its_wire_shape() -> None:
    for event in emitted(*ONE_OF_EACH):
        wire = json.loads(json.dumps(event.to_dict()))
        assert EVENTS.parse(wire) == event
        assert list(wire)[:4] == ["kind", "run", "seq", "at"] and wire["kind"] == event.kind


def test_the_wire_shape_leaves_out_what_a_kind_does_not_carry() -> None:
    loaded, progress = emitted(ModelLoaded(model="tiny/sd", device="cpu", seconds=0.25, node="image"),
                               NodeProgress(node="image", step=2, total=4))
    assert list(loaded.to_dict()) == ["kind", "run", "seq", "at", "node", "device", "seconds", "model"]
    assert loaded.to_dict() | {"at": 0} == {"kind": "model.loaded", "run": "r1", "seq": 1, "at": 0, "node": "image",
                                            "device": "cpu", "seconds": 0.25, "model": "tiny/sd"}
    assert progress.to_dict() | {"at": 0} == {"kind": "node.progress", "run": "r1", "seq": 2, "at": 0,
                                              "node": "image", "step": 2, "total": 4}


def test_the_wire_keeps_its_field_order() -> None:
    """Clients and stored runs have seen the fields in one order across kinds; each class declares them so."""
    order = ["node", "node_type", "device", "step", "total", "text", "delta", "seconds", "error", "status", "model",
             "nodes", "link", "width", "height"]
    for event in emitted(*ONE_OF_EACH):
        names = list(event.to_dict())[4:]
        assert names == sorted(names, key=order.index), event.kind


def test_server_made_events_have_the_engine_shape() -> None:
    event = run_event("r1", 1, RunFinished(status="cancelled", error="cancelled before it started"))
    assert list(event.to_dict()) == ["kind", "run", "seq", "at", "error", "status"]
    assert event.to_dict() == emitted(RunFinished(status="cancelled", error="cancelled before it started"))[0] \
        .to_dict() | {"at": event.at}


def test_one_rule_gives_each_node_its_status() -> None:
    assert status_changes(NodeStarted(node="a", node_type="t", device="cpu")) == [("a", "running")]
    assert status_changes(NodeFinished(node="a", node_type="t", device="cpu", seconds=1.0)) == [("a", "succeeded")]
    assert status_changes(NodeFailed(node="a", node_type="t", error="x")) == [("a", "failed")]
    assert status_changes(NodeSkipped(node="a", node_type="t", error=None)) == [("a", "skipped")]
    assert status_changes(NodesCached(nodes=("a", "b"))) == [("a", "cached"), ("b", "cached")]
    assert status_changes(NodeCached(node="a")) == [("a", "cached")]  # runs stored before 0.2
    assert status_changes(NodeProgress(node="a", step=1)) == []
    assert status_changes(RunFinished(status="succeeded")) == []
