"""Bypassed nodes: each output takes the node's first input of the same type; the node does not run and its
consumers' cache keys are those of the graph without it; an output with nothing to pass through is an issue."""

from typing import Any

import pytest

from nodeforge.engine.compiler import GraphEnv, validate
from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError
from nodeforge.engine.events import Event, NodeStarted
from nodeforge.engine.session import Session


def chain(bypass: bool) -> dict[str, Any]:
    return {"nodes": {
        "a": {"type": "test.add", "inputs": {"x": 1, "delta": 1}},
        "b": {"type": "test.add", "inputs": {"x": {"from": "a.value"}, "delta": 10}, "bypass": bypass},
        "c": {"type": "test.add", "inputs": {"x": {"from": "b.value"}, "delta": 100}}},
        "outputs": {"out": {"from": "c.value"}}}


def test_a_bypassed_node_passes_its_first_input_of_the_same_type_through(session: Session) -> None:
    assert session.run(parse_document(chain(False))).values["out"] == 112
    events: list[Event] = []
    result = session.run(parse_document(chain(True)), listener=events.append)
    assert result.values["out"] == 102
    assert result.record.nodes["b"].status == "skipped" and result.record.nodes["b"].error == "bypassed"
    assert "b" not in {e.data.node for e in events if isinstance(e.data, NodeStarted)}


def test_the_cache_key_ignores_the_bypassed_node(session: Session) -> None:
    without_b = {"nodes": {"a": {"type": "test.add", "inputs": {"x": 1, "delta": 1}},
                           "c": {"type": "test.add", "inputs": {"x": {"from": "a.value"}, "delta": 100}}},
                 "outputs": {"out": {"from": "c.value"}}}
    assert session.run(parse_document(without_b)).values["out"] == 102
    events: list[Event] = []
    assert session.run(parse_document(chain(True)), listener=events.append).values["out"] == 102
    assert not [e for e in events if e.kind == "node.started"]  # a and c come from the cache
    assert parse_document(chain(True)).to_json()["nodes"]["b"]["bypass"] is True
    assert "bypass" not in parse_document(chain(False)).to_json()["nodes"]["b"]  # documents stay as written


def test_an_output_with_nothing_to_pass_through_is_an_issue(env: GraphEnv, session: Session) -> None:
    document = parse_document({"nodes": {
        "noise": {"type": "test.noise", "inputs": {"seed": 1}, "bypass": True},
        "light": {"type": "test.brightness", "inputs": {"image": {"from": "noise.image"}}}}})
    issues = validate(document, env)
    assert [(i.node, i.code, i.message) for i in issues] == [
        ("noise", "bypass", "node 'noise' is bypassed, but no input of type image passes through to its output "
                            "'image' (used by 'light.image')")]
    with pytest.raises(GraphValidationError):
        session.run(document)
