"""Each kind of validation issue, reported with node, input, code and a reason; all issues at once."""

from typing import Any

import pytest

from nodeforge.engine.compiler import GraphEnv, compile_graph, validate
from nodeforge.engine.document import parse_document
from nodeforge.engine.errors import GraphValidationError


def issues_of(env: GraphEnv, nodes: dict[str, Any], **extra: Any) -> list[tuple[Any, ...]]:
    document = parse_document({"nodes": nodes, **extra})
    return [(i.node, i.input, i.code) for i in validate(document, env)]


def messages_of(env: GraphEnv, nodes: dict[str, Any], **extra: Any) -> list[str]:
    return [i.message for i in validate(parse_document({"nodes": nodes, **extra}), env)]


def test_valid_graph_has_no_issues(env: GraphEnv) -> None:
    nodes = {"a": {"type": "int.value", "inputs": {"value": 2}},
             "b": {"type": "test.add", "inputs": {"x": {"from": "a.value"}, "delta": 3}}}
    assert issues_of(env, nodes) == []


def test_unknown_node_type(env: GraphEnv) -> None:
    assert issues_of(env, {"a": {"type": "image.nope"}}) == [("a", None, "unknown_type")]


def test_unknown_input_name_lists_accepted_inputs(env: GraphEnv) -> None:
    nodes = {"a": {"type": "test.add", "inputs": {"y": 1}}}
    assert issues_of(env, nodes) == [("a", "y", "unknown_input")]
    assert "inputs: x, delta, channel" in messages_of(env, nodes)[0]


def test_link_to_missing_node(env: GraphEnv) -> None:
    nodes = {"b": {"type": "test.add", "inputs": {"x": {"from": "ghost.value"}}}}
    assert issues_of(env, nodes) == [("b", "x", "missing_node")]


def test_link_to_unknown_output(env: GraphEnv) -> None:
    nodes = {"a": {"type": "int.value", "inputs": {"value": 1}},
             "b": {"type": "test.add", "inputs": {"x": {"from": "a.text"}}}}
    assert issues_of(env, nodes) == [("b", "x", "unknown_output")]
    assert "has no output 'text' (outputs: value)" in messages_of(env, nodes)[0]


def test_malformed_link(env: GraphEnv) -> None:
    nodes = {"b": {"type": "test.add", "inputs": {"x": {"from": "no-dot"}}}}
    assert issues_of(env, nodes) == [("b", "x", "bad_link")]


def test_unknown_graph_input(env: GraphEnv) -> None:
    nodes = {"a": {"type": "test.add", "inputs": {"x": {"input": "count"}}}}
    assert issues_of(env, nodes) == [("a", "x", "unknown_graph_input")]


def test_type_mismatch_text_to_int_is_refused(env: GraphEnv) -> None:
    nodes = {"t": {"type": "text.value", "inputs": {"value": "hi"}},
             "b": {"type": "test.add", "inputs": {"x": {"from": "t.text"}}}}
    assert issues_of(env, nodes) == [("b", "x", "type_mismatch")]
    assert messages_of(env, nodes) == ["'t.text' is text; input 'x' takes int"]


def test_int_to_float_is_allowed_but_text_to_image_is_not(env: GraphEnv) -> None:
    nodes = {"i": {"type": "int.value", "inputs": {"value": 1}},
             "f": {"type": "float.value", "inputs": {"value": {"from": "i.value"}}},
             "t": {"type": "text.value", "inputs": {"value": "x"}},
             "m": {"type": "test.brightness", "inputs": {"image": {"from": "t.text"}}}}
    assert issues_of(env, nodes) == [("m", "image", "type_mismatch")]


def test_graph_input_type_mismatch(env: GraphEnv) -> None:
    nodes = {"a": {"type": "test.add", "inputs": {"x": {"input": "who"}}}}
    assert issues_of(env, nodes, inputs={"who": {"type": "text"}}) == [("a", "x", "type_mismatch")]


def test_missing_required_input(env: GraphEnv) -> None:
    assert issues_of(env, {"a": {"type": "int.value"}}) == [("a", "value", "missing_input")]


def test_invalid_literal_carries_pydantic_reason(env: GraphEnv) -> None:
    nodes = {"a": {"type": "test.add", "inputs": {"x": "many"}}}
    assert issues_of(env, nodes) == [("a", "x", "invalid_literal")]
    message = messages_of(env, nodes)[0]
    assert message.startswith("x: 'many' is not a valid int")
    assert "valid integer" in message


def test_literal_out_of_range(env: GraphEnv) -> None:
    nodes = {"n": {"type": "test.noise", "inputs": {"size": 0, "seed": 1}}}
    assert issues_of(env, nodes) == [("n", "size", "invalid_literal")]
    assert "greater than or equal to 1" in messages_of(env, nodes)[0]


def test_media_input_refuses_a_literal(env: GraphEnv) -> None:
    nodes = {"m": {"type": "test.brightness", "inputs": {"image": "cat.png"}}}
    assert issues_of(env, nodes) == [("m", "image", "invalid_literal")]


def test_cycle_names_the_nodes_on_it(env: GraphEnv) -> None:
    nodes = {"a": {"type": "test.add", "inputs": {"x": {"from": "c.value"}}},
             "b": {"type": "test.add", "inputs": {"x": {"from": "a.value"}}},
             "c": {"type": "test.add", "inputs": {"x": {"from": "b.value"}}},
             "free": {"type": "test.add"}}
    found = validate(parse_document({"nodes": nodes}), env)
    assert [i.code for i in found] == ["cycle"]
    assert found[0].message.startswith("the graph has a cycle: ")
    on_cycle = found[0].message.split(": ", 1)[1].split(" -> ")
    assert set(on_cycle) == {"a", "b", "c"} and on_cycle[0] == on_cycle[-1]


def test_self_loop_is_a_cycle(env: GraphEnv) -> None:
    nodes = {"a": {"type": "test.add", "inputs": {"x": {"from": "a.value"}}}}
    assert issues_of(env, nodes) == [("a", None, "cycle")]


def test_declared_output_pointing_nowhere(env: GraphEnv) -> None:
    nodes = {"a": {"type": "test.add"}}
    found = issues_of(env, nodes, outputs={"total": {"from": "a.sum"}, "other": {"from": "zz.value"}})
    assert found == [(None, "total", "bad_output"), (None, "other", "bad_output")]


def test_template_placeholder_without_input(env: GraphEnv) -> None:
    nodes = {"t": {"type": "text.template", "inputs": {"template": "Hi {name}, {mood}?", "name": "Ada"}}}
    assert issues_of(env, nodes) == [("t", "mood", "invalid_input")]
    assert messages_of(env, nodes) == ["placeholder {mood} has no input named 'mood'"]


def test_template_extra_input_must_be_text(env: GraphEnv) -> None:
    nodes = {"i": {"type": "int.value", "inputs": {"value": 3}},
             "t": {"type": "text.template", "inputs": {"template": "{n}", "n": {"from": "i.value"}}}}
    assert issues_of(env, nodes) == [("t", "n", "type_mismatch")]


def test_incompatible_version_is_reported(env: GraphEnv) -> None:
    nodes = {"a": {"type": "test.add", "version": "2.0.0"}, "b": {"type": "test.add", "version": "1.0.0"}}
    assert issues_of(env, nodes) == [("a", None, "version")]


def test_every_issue_is_collected_at_once(env: GraphEnv) -> None:
    nodes = {"a": {"type": "nope.nope"},
             "b": {"type": "test.add", "inputs": {"x": "many", "zz": 1}},
             "c": {"type": "int.value"}}
    assert sorted(issues_of(env, nodes), key=str) == sorted(
        [("a", None, "unknown_type"), ("b", "x", "invalid_literal"), ("b", "zz", "unknown_input"),
         ("c", "value", "missing_input")], key=str)


def test_document_level_errors_name_node_and_input() -> None:
    with pytest.raises(GraphValidationError) as caught:
        parse_document({"nodes": {"bad id!": {"type": "x.y"}, "ok": {"typo": 1}}})
    codes = {(i.node, i.code) for i in caught.value.issues}
    assert ("ok", "document") in codes
    assert len(caught.value.issues) >= 2


def test_ten_thousand_node_chain_validates_without_recursion(env: GraphEnv) -> None:
    nodes = {"n0": {"type": "test.add"}}
    nodes.update({f"n{i}": {"type": "test.add", "inputs": {"x": {"from": f"n{i - 1}.value"}}}
                  for i in range(1, 10_000)})
    compiled = compile_graph(parse_document({"nodes": nodes}), env)
    assert compiled.order[0] == "n0" and compiled.order[-1] == "n9999"
    assert list(compiled.outputs) == ["n9999.value"]


def test_values_nested_too_deeply_are_listed_with_the_other_document_issues() -> None:
    deep: Any = 0
    for _ in range(10_000):
        deep = [deep]
    edge: Any = 0
    for _ in range(64):
        edge = {"k": edge}
    data = {"nodes": {"a": {"type": "int.value", "inputs": {"value": deep, "fine": edge}}},
            "inputs": {"n": {"type": "json", "default": [edge]}}, "ui": {"at": edge}, "extra": 1}
    with pytest.raises(GraphValidationError) as caught:
        parse_document(data)
    assert [(i.node, i.input, i.code, i.message) for i in caught.value.issues] == [
        ("a", "value", "too_deep", "nodes.a.inputs.value: nested deeper than 64 levels"),
        (None, "n", "too_deep", "inputs.n.default: nested deeper than 64 levels"),
        (None, None, "too_deep", "ui: nested deeper than 64 levels"),
        (None, None, "document", "extra: Extra inputs are not permitted")]


def test_graph_input_types_are_the_scalar_and_media_types() -> None:
    from typing import get_args

    from nodeforge.engine.types import MEDIA_TYPES, SCALAR_TYPES, GraphInputType

    assert get_args(GraphInputType) == SCALAR_TYPES + MEDIA_TYPES
