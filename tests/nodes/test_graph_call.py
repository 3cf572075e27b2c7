"""graph.call: a saved graph as one node, with its ports, shared cache and clear errors."""

import json
from pathlib import Path

from nodeforge.engine.compiler import GraphEnv, validate
from nodeforge.engine.document import parse_document
from nodeforge.engine.session import Session
from tests.support.testnodes import coordination

INNER = {
    "name": "plus-two",
    "inputs": {"start": {"type": "int"}, "channel": {"type": "text", "default": ""}},
    "nodes": {"a": {"type": "test.add", "inputs": {"x": {"input": "start"}, "channel": {"input": "channel"}}},
              "b": {"type": "test.add", "inputs": {"x": {"from": "a.value"}, "channel": {"input": "channel"}}},
              "label": {"type": "text.template", "inputs": {"template": "total", "channel": {"input": "channel"}}}},
    "outputs": {"total": {"from": "b.value"}, "label": {"from": "label.text"}},
}


def save(env: GraphEnv, name: str, data: dict) -> Path:
    path = env.library.folders[0] / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def outer(channel: str, start_from: str = "seed") -> dict:
    return {"nodes": {
        "seed": {"type": "int.value", "inputs": {"value": 5}},
        "call": {"type": "graph.call", "inputs": {"graph": "plus-two", "start": {"from": f"{start_from}.value"},
                                                  "channel": channel}},
        "after": {"type": "test.add", "inputs": {"x": {"from": "call.total"}, "delta": 100}}}}


def test_called_graph_ports_become_node_ports(session: Session, env: GraphEnv, request) -> None:
    coord = coordination(request.node.name)
    save(env, "plus-two", INNER)
    result = session.run(parse_document(outer(request.node.name)))
    assert result.record.status == "succeeded", result.record.error
    assert result.values == {"after.value": 107}
    assert coord.calls == ["a", "b"]


def test_inner_nodes_share_the_cache(session: Session, env: GraphEnv, request) -> None:
    coord = coordination(request.node.name)
    save(env, "plus-two", INNER)
    session.run(parse_document(outer(request.node.name)))
    coord.calls.clear()
    changed = dict(INNER, outputs={"total": {"from": "b.value"}})
    save(env, "plus-two", changed)
    result = session.run(parse_document(outer(request.node.name)))
    assert result.record.nodes["call"].status == "succeeded"
    assert coord.calls == []
    assert result.values == {"after.value": 107}


def test_unknown_input_and_type_mismatch_on_call(env: GraphEnv) -> None:
    save(env, "plus-two", INNER)
    data = outer("x")
    data["nodes"]["call"]["inputs"]["bogus"] = 1
    data["nodes"]["txt"] = {"type": "text.value", "inputs": {"value": "no"}}
    data["nodes"]["call"]["inputs"]["start"] = {"from": "txt.text"}
    found = {(i.node, i.input, i.code) for i in validate(parse_document(data), env)}
    assert found == {("call", "bogus", "unknown_input"), ("call", "start", "type_mismatch")}


def test_missing_saved_graph_and_recursion_are_issues(env: GraphEnv) -> None:
    missing = validate(parse_document({"nodes": {"c": {"type": "graph.call", "inputs": {"graph": "nope"}}}}), env)
    assert [(i.node, i.code) for i in missing] == [("c", "bad_ports")]
    assert "no saved graph named 'nope'" in missing[0].message
    save(env, "loop", {"nodes": {"c": {"type": "graph.call", "inputs": {"graph": "loop"}}}})
    looping = validate(parse_document({"nodes": {"c": {"type": "graph.call", "inputs": {"graph": "loop"}}}}), env)
    assert "graph.call recursion: loop -> loop" in looping[0].message


def test_graphs_calling_each_other_are_named_on_the_outer_call(env: GraphEnv) -> None:
    save(env, "ping", {"nodes": {"c": {"type": "graph.call", "inputs": {"graph": "pong"}}}})
    save(env, "pong", {"nodes": {"c": {"type": "graph.call", "inputs": {"graph": "ping"}}}})
    found = validate(parse_document({"nodes": {"outer": {"type": "graph.call", "inputs": {"graph": "ping"}}}}), env)
    assert [(i.node, i.input, i.code, i.message) for i in found] == [
        ("outer", "graph", "recursion", "graph.call recursion: ping -> pong -> ping")]
