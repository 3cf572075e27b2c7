"""The text and number nodes."""

from nodeforge.engine.document import parse_document
from nodeforge.engine.session import Session


def run_nodes(session: Session, nodes: dict) -> dict:
    result = session.run(parse_document({"nodes": nodes}))
    assert result.record.status == "succeeded", result.record.error
    return result.values


def test_template_fills_placeholders_and_keeps_escaped_braces(session: Session) -> None:
    values = run_nodes(session, {
        "who": {"type": "text.value", "inputs": {"value": "Grace"}},
        "t": {"type": "text.template", "inputs": {"template": "{{hi}} {who}, {what}!", "who": {"from": "who.text"},
                                                  "what": "welcome"}}})
    assert values == {"t.text": "{hi} Grace, welcome!"}


def test_template_with_linked_template_reports_missing_placeholder_at_run(session: Session) -> None:
    result = session.run(parse_document({"nodes": {
        "src": {"type": "text.value", "inputs": {"value": "Hi {name}"}},
        "t": {"type": "text.template", "inputs": {"template": {"from": "src.text"}}}}}))
    assert result.record.nodes["t"].error == (
        "node 't' (text.template), input 'name': placeholder {name} has no input named 'name'")


def test_join_and_number_values(session: Session) -> None:
    values = run_nodes(session, {
        "j": {"type": "text.join", "inputs": {"texts": ["a", "b", "c"], "separator": ", "}},
        "i": {"type": "int.value", "inputs": {"value": 7}},
        "f": {"type": "float.value", "inputs": {"value": {"from": "i.value"}}}})
    assert values == {"j.text": "a, b, c", "f.value": 7.0}
    assert isinstance(values["f.value"], float)
