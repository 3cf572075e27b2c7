"""Bounded schemathesis runs against a live server and its own ``/openapi.json``: every response it gives, to valid
and to invalid requests, must be documented there (status code, content type and body schema), and no request
may cause a 5xx. A pass with real graph documents fuzzes the success paths (202, 201) too.

Streams (server-sent events) are left out: they stay open by design. Schemathesis's pytest plugin predates pytest 9,
so the strategies are driven with hypothesis directly.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

import httpx2  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup  # noqa: E402

from nodeforge.server.app import create_app  # noqa: E402
from nodeforge.server.settings import Settings  # noqa: E402
from tests.server.support import LiveServer, wait_finished  # noqa: E402

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("NODEFORGE_SCHEMATHESIS_EXAMPLES", "15"))
"""Cases per operation and mode (CI: 15; a deeper run sets more)."""
EXPLORE = bool(os.environ.get("NODEFORGE_SCHEMATHESIS_EXPLORE"))
"""CI draws the same cases every time (a failure there is one a change made, and reproduces); a deeper run sets
NODEFORGE_SCHEMATHESIS_EXPLORE=1 to draw new ones, as the run that found the ``~user`` model name did."""
STRICT = ("GET /api/graphs/{name}", "DELETE /api/graphs/{name}", "GET /api/artifacts/{artifact_id}", "GET /api/runs",
          "GET /api/runs/{run_id}", "GET /api/runs/{run_id}/graph", "GET /api/runs/{run_id}/compare",
          "POST /api/runs/{run_id}/cancel")
"""Operations whose every refusal is one of shape, so their schema can say exactly what they accept (a graph
document's node types and inputs, or an upload's content, are checked against the catalogue and the bytes)."""
PATTERNED = ("GET /api/graphs/{name}", "DELETE /api/graphs/{name}", "GET /api/artifacts/{artifact_id}")
"""Of those, the ones whose path parameter has a pattern (so a request outside it can be built)."""
FIELD = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
NODE_ID = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,10}", fullmatch=True)
GRAPH_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
TEXT = st.text(max_size=24)


class Tally:
    """Status codes seen and failures found, over every case of a run (printed, then asserted)."""

    def __init__(self, checks: list[Any] | None = None) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.checks = checks or CHECKS

    def call(self, case: Any, **call: Any) -> schemathesis.Response | None:
        """Send the case (``call``: base_url, headers), count its status, check the response; None on failure."""
        response = case.call(**call)
        self.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=self.checks)
        except FailureGroup as group:
            titles = sorted({failure.title for failure in group.exceptions})
            self.failures.append(f"{case.operation.label} -> {response.status_code}: {', '.join(titles)}")
            return None
        return response

    def report(self, what: str) -> str:
        cases = sum(self.statuses.values())
        line = f"{what}: {cases} cases, statuses {dict(sorted(self.statuses.items()))}, {len(self.failures)} failures"
        print("\n" + "\n  ".join([line, *sorted(set(self.failures))]))
        return line


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("schemathesis")
    with LiveServer(create_app(Settings(data_dir=data_dir, devices="cpu", watch=False))) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(live: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


def operations(api_schema: Any) -> list[Any]:
    found = [result.ok() for result in api_schema.exclude(path_regex=r"events$").get_all_operations()]
    assert len(found) >= 16
    return found


def has_input(operation: Any) -> bool:
    """Whether an invalid request can be built: a body, a query or a header (a free-text path parameter cannot
    be invalid, and an operation without parameters has nothing to get wrong)."""
    return bool(operation.get_request_payload_content_types()) or any(
        parameter.location != "path" for parameter in operation.iter_parameters())


def drive(strategy: Any, examples: int, body: Callable[[Any], None]) -> None:
    @given(case=strategy)
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              derandomize=not EXPLORE)
    def run(case: Any) -> None:
        body(case)

    run()


def test_responses_match_the_published_schema(api_schema: Any) -> None:
    """Every operation, valid and invalid requests: up to EXAMPLES of each per operation, every response checked."""
    tally = Tally()
    for operation in operations(api_schema):
        drive(operation.as_strategy(generation_mode=GenerationMode.POSITIVE), EXAMPLES, tally.call)
        if has_input(operation):
            drive(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), EXAMPLES, tally.call)
    line = tally.report("conformance")
    assert not tally.failures, line
    assert {400, 404, 422} <= set(tally.statuses), line


def test_the_schema_is_as_strict_as_the_server(api_schema: Any) -> None:
    """Where the server refuses only by shape, a request the schema admits is never refused for its shape (a graph
    name outside the library's pattern answered 400 while the schema allowed any string), and one it forbids is
    never accepted."""
    tally = Tally([*CHECKS, positive_data_acceptance, negative_data_rejection])
    for label in STRICT:
        operation = api_schema.find_operation_by_label(label)
        drive(operation.as_strategy(generation_mode=GenerationMode.POSITIVE), EXAMPLES, tally.call)
        if has_input(operation) or label in PATTERNED:
            drive(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE), EXAMPLES, tally.call)
    line = tally.report("strictness")
    assert not tally.failures, line


@st.composite
def documents(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    """A real graph document and inputs for it: text.value nodes and graph inputs feeding one text.template."""
    ids = draw(st.lists(NODE_ID, min_size=2, max_size=4, unique=True))
    template_id, value_ids = ids[0], ids[1:]
    fields = draw(st.lists(FIELD, max_size=3, unique=True))
    graph_inputs: dict[str, Any] = {}
    template: dict[str, Any] = {}
    for field in fields:
        if draw(st.booleans()):
            template[field] = {"from": f"{draw(st.sampled_from(value_ids))}.text"}
        else:
            graph_inputs[field] = {"type": "text", "default": draw(TEXT)}
            template[field] = {"input": field}
    pieces = [draw(TEXT).replace("{", "{{").replace("}", "}}") for _ in range(len(fields) + 1)]
    text = pieces[0] + "".join(f"{{{field}}}{piece}" for field, piece in zip(fields, pieces[1:], strict=True))
    nodes: dict[str, Any] = {node: {"type": "text.value", "inputs": {"value": draw(TEXT)}} for node in value_ids}
    nodes[template_id] = {"type": "text.template", "inputs": {"template": text, **template}}
    document = {"description": draw(TEXT), "inputs": graph_inputs, "nodes": nodes,
                "outputs": {"text": {"from": f"{template_id}.text"}}}
    given_inputs = {name: draw(TEXT) for name in graph_inputs if draw(st.booleans())}
    return document, given_inputs


def test_valid_documents_are_accepted_and_run(api_schema: Any, live: LiveServer) -> None:
    """Generated graph documents through the real operations: each is saved (201/200) or queued (202), and runs."""
    tally = Tally()
    runs: list[str] = []
    submit = api_schema.find_operation_by_label("POST /api/runs")
    save = api_schema.find_operation_by_label("PUT /api/graphs/{name}")

    def queue(drawn: tuple[dict[str, Any], dict[str, str]]) -> None:
        document, inputs = drawn
        response = tally.call(submit.Case(body={"graph": document, "inputs": inputs}, media_type="application/json"))
        if response is not None and response.status_code == 202:
            runs.append(response.json()["id"])

    def store(drawn: tuple[str, tuple[dict[str, Any], dict[str, str]]]) -> None:
        name, (document, _) = drawn
        tally.call(save.Case(path_parameters={"name": name}, body=document, media_type="application/json"))

    drive(documents(), 15, queue)
    drive(st.tuples(GRAPH_NAME, documents()), 10, store)
    line = tally.report("valid documents")
    assert not tally.failures, line
    assert tally.statuses[202] == len(runs) >= 10 and set(tally.statuses) <= {200, 201, 202}, line
    with httpx2.Client(base_url=live.url, timeout=30) as http:
        assert {wait_finished(http, run_id)["status"] for run_id in runs} == {"succeeded"}


def test_the_guards_refusals_are_documented(api_schema: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """One request per operation to a server with a token and a small body limit: without the token (401), from a
    foreign Host name (403) and, where there is a JSON body, over the limit (413)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("guarded"), devices="cpu", watch=False, token=TOKEN,
                        max_body_bytes=200)
    tally = Tally()
    with LiveServer(create_app(settings)) as guarded:

        def refuse(case: Any) -> None:
            tally.call(case, base_url=guarded.url)
            tally.call(case, base_url=guarded.url, headers={**AUTH, "Host": "attacker.example"})
            if case.media_type == "application/json":
                case.body = {"graph": "x" * 300}
                tally.call(case, base_url=guarded.url, headers=AUTH)

        for operation in operations(api_schema):
            drive(operation.as_strategy(), 1, refuse)
    line = tally.report("guard refusals")
    assert not tally.failures, line
    assert set(tally.statuses) == {401, 403, 413} and tally.statuses[413] >= 3, line


def test_conflicts_and_refused_keys_are_documented(api_schema: Any, live: LiveServer) -> None:
    """400 for an empty Idempotency-Key, 409 for a key reused with another body and for cancelling a finished run."""
    tally = Tally()
    submit = api_schema.find_operation_by_label("POST /api/runs")
    cancel = api_schema.find_operation_by_label("POST /api/runs/{run_id}/cancel")
    key = {"Idempotency-Key": "conflict-1"}
    first = tally.call(submit.Case(body={"graph": "hello"}, headers=key, media_type="application/json"))
    assert first is not None
    tally.call(submit.Case(body={"graph": "hello", "inputs": {"name": "x"}}, headers=key,
                           media_type="application/json"))
    tally.call(submit.Case(body={"graph": "hello"}, headers={"Idempotency-Key": ""}, media_type="application/json"))
    with httpx2.Client(base_url=live.url, timeout=30) as http:
        wait_finished(http, first.json()["id"])
    tally.call(cancel.Case(path_parameters={"run_id": first.json()["id"]}))
    line = tally.report("conflicts")
    assert not tally.failures, line
    assert tally.statuses == Counter({202: 1, 409: 2, 400: 1}), line


def test_the_conformance_checks_catch_a_wrong_schema(api_schema: Any, live: LiveServer) -> None:
    """The same checks against a deliberately wrong copy of the document: they must fail, or they prove nothing."""
    wrong = copy.deepcopy(api_schema.raw_schema)
    wrong["components"]["schemas"]["ErrorBody"]["required"].append("missing_field")
    del wrong["paths"]["/api/runs/{run_id}"]["get"]["responses"]["404"]
    misled = schemathesis.openapi.from_dict(wrong)
    misled.config.update(base_url=live.url)
    tally = Tally()
    runs = misled.find_operation_by_label("POST /api/runs")
    tally.call(runs.Case(body={"graph": "no-such-graph"}, media_type="application/json"))
    tally.call(misled.find_operation_by_label("GET /api/runs/{run_id}").Case(path_parameters={"run_id": "nope"}))
    assert [failure.split(": ", 1)[1] for failure in tally.failures] == ["Response violates schema",
                                                                        "Undocumented status code"]
