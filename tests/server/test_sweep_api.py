"""Sweeps and batches over HTTP: POST /api/runs with "sweep" or "rows", and the comparison page of the run."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.server.support import wait_finished


class Cells(HTMLParser):
    """The rows of the page's table body."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self.inside = True
        elif tag == "tr" and self.inside:
            self.rows.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.rows and data.strip():
            self.rows[-1].append(data.strip())


def test_a_swept_run_has_a_comparison_page(client: TestClient) -> None:
    response = client.post("/api/runs", json={"graph": "hello", "sweep": {"axes": {"name": ["Ada", "Grace", "Lin"]}}})
    assert response.status_code == 202, response.text
    record = wait_finished(client, response.json()["id"])
    assert record["status"] == "succeeded"
    assert [record["outputs"][f"c{i}__message"] for i in range(3)] == [
        f"Hello, {name}! See you soon." for name in ("Ada", "Grace", "Lin")]
    page = client.get(f"/api/runs/{record['id']}/compare")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    parser = Cells()
    parser.feed(page.text)
    assert len(parser.rows) == 3
    assert all(f"Hello, {name}! See you soon." in row for row, name in zip(parser.rows, ("Ada", "Grace", "Lin"),
                                                                        strict=True))


def test_rows_run_once_per_object_and_zip_pairs_the_values(client: TestClient) -> None:
    rows = client.post("/api/runs", json={"graph": "hello", "rows": [{"name": "Ada"}, {"name": "Lin"}]}).json()
    record = wait_finished(client, rows["id"])
    assert record["outputs"] == {"c0__message": "Hello, Ada! See you soon.",
                                 "c1__message": "Hello, Lin! See you soon."}
    assert client.get(f"/api/runs/{rows['id']}/compare").status_code == 200
    graph = {"inputs": {"a": {"type": "text"}, "b": {"type": "text"}},
             "nodes": {"t": {"type": "text.template", "inputs": {"template": "{a}{b}", "a": {"input": "a"},
                                                                 "b": {"input": "b"}}}},
             "outputs": {"text": {"from": "t.text"}}}
    zipped = client.post("/api/runs", json={"graph": graph, "sweep": {"axes": {"a": ["x", "y"], "b": ["1", "2"]},
                                                                     "mode": "zip"}}).json()
    assert wait_finished(client, zipped["id"])["outputs"] == {"c0__text": "x1", "c1__text": "y2"}


def test_bad_sweeps_are_refused_and_a_plain_run_has_no_page(client: TestClient) -> None:
    bad = client.post("/api/runs", json={"graph": "hello", "sweep": {"axes": {"colour": ["red"]}}})
    assert bad.status_code == 422
    issue = bad.json()["issues"][0]
    assert issue["input"] == "sweep" and "'colour' is not an input of graph 'hello'" in issue["message"]
    both = client.post("/api/runs", json={"graph": "hello", "sweep": {"axes": {"name": ["a"]}},
                                          "rows": [{"name": "b"}]})
    assert both.status_code == 422 and "not both" in both.text
    plain = client.post("/api/runs", json={"graph": "hello"}).json()
    wait_finished(client, plain["id"])
    page = client.get(f"/api/runs/{plain['id']}/compare")
    assert page.status_code == 404 and "is not a sweep" in page.text


class Links(HTMLParser):
    """Every URL-valued attribute in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [(tag, name, value or "") for name, value in attrs
                      if name in ("href", "src", "action", "formaction", "poster", "srcset", "data")]


def urls_of(page: str) -> list[tuple[str, str, str]]:
    links = Links()
    links.feed(page)
    return links.urls


def peak_bytes(call: Callable[[], Any]) -> int:
    """The most memory Python held (every thread: the app's too) while ``call`` ran."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


HUNDRED = list(range(100))
PICK = {"inputs": {"pick": {"type": "json", "default": 0}, "name": {"type": "text", "default": "x"}},
        "nodes": {"t": {"type": "text.template", "inputs": {"template": "{name}", "name": {"input": "name"}}}},
        "outputs": {"text": {"from": "t.text"}}}


def test_a_sweep_bomb_is_counted_and_refused_before_anything_is_built(client: TestClient) -> None:
    """A few bytes of axes that multiply to a million cells (or a billion) answer 422 at once: the count is
    arithmetic, so the server builds nothing (a million built cells cost it a few hundred MB)."""
    answers: list[Any] = []
    body = {"graph": "hello", "sweep": {"axes": {"name": HUNDRED, "x": HUNDRED, "y": HUNDRED}}}
    assert peak_bytes(lambda: answers.append(client.post("/api/runs", json=body))) < 8_000_000
    assert answers[0].status_code == 422, answers[0].text
    assert "the sweep has 1,000,000 cells" in answers[0].json()["issues"][0]["message"]
    billion = client.post("/api/runs", json={"graph": "hello", "sweep": {"axes": {
        name: list(range(1000)) for name in ("name", "x", "y")}}})
    assert billion.status_code == 422
    issue = billion.json()["issues"][0]
    assert issue["input"] == "sweep" and issue["message"] == (
        "axes: the sweep has 1,000,000,000 cells (axes of name: 1000, x: 1000, y: 1000 values); at most 4096 run in "
        "one sweep")
    rows = client.post("/api/runs", json={"graph": "hello", "rows": [{"name": "a"}] * 4097})
    assert rows.status_code == 422 and "body.rows: List should have at most 4096 items" in rows.text
    long_axis = client.post("/api/runs", json={"graph": "hello", "sweep": {"axes": {"name": HUNDRED * 41}}})
    assert long_axis.status_code == 422 and "body.sweep.axes.name: List should have at most 4096" in long_axis.text


def test_a_graph_sweep_node_bomb_is_refused_when_the_graph_is_saved(client: TestClient) -> None:
    """``graph.sweep`` checks its axes when the graph is validated (PUT): counted, never built."""
    answers: list[Any] = []
    document = {"nodes": {"s": {"type": "graph.sweep", "inputs": {
        "graph": "hello", "axes": {"name": HUNDRED, "a": HUNDRED, "b": HUNDRED}}}}}
    assert peak_bytes(lambda: answers.append(client.put("/api/graphs/bomb", json=document))) < 8_000_000
    assert answers[0].status_code == 422, answers[0].text
    issue = answers[0].json()["issues"][0]
    assert (issue["node"], issue["input"]) == ("s", "axes") and "1,000,000 cells" in issue["message"]
    assert client.get("/api/graphs/bomb").status_code == 404


@pytest.mark.parametrize("url", ["javascript:fetch('/api/runs')", "JAVASCRIPT:alert(1)",
                                 "data:text/html,<script>alert(1)</script>", "https://evil.example/pic.png"])
def test_a_swept_media_value_never_becomes_a_link_on_the_comparison_page(client: TestClient, url: str) -> None:
    """A media-shaped swept value with a hostile URL is shown as text: no href or src on the page but the
    server's own artifact URLs, and the page's policy runs only its own script."""
    value = {"url": url, "media_type": "image/png"}
    response = client.post("/api/runs", json={"graph": PICK, "sweep": {"axes": {"pick": [value, value]}}})
    assert response.status_code == 202, response.text
    wait_finished(client, response.json()["id"])
    page = client.get(f"/api/runs/{response.json()['id']}/compare")
    assert page.status_code == 200
    assert urls_of(page.text) == []
    assert url.split(":")[0] in page.text, "the value is still shown"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "unsafe-inline" not in \
        policy.split("script-src")[1].split(";")[0]


def test_a_forged_sweep_description_links_nothing_but_artifacts(client: TestClient) -> None:
    """Any graph document may carry a ``ui.sweep``; its cells are user input like a swept value."""
    hostile = {"url": "javascript:alert(document.cookie)", "media_type": "image/png"}
    artifact = {"url": "/api/artifacts/" + "ab" * 16, "media_type": "image/png"}
    forged = {**PICK, "ui": {"sweep": {"graph": "<img src=x onerror=alert(1)>", "cells": [
        {"pick": hostile}, {"pick": artifact}, {"pick": [hostile, artifact]}], "outputs": ["text"],
        "own": [[], [], []], "uses": [[], [], []]}}}
    response = client.post("/api/runs", json={"graph": forged})
    assert response.status_code == 202, response.text
    wait_finished(client, response.json()["id"])
    page = client.get(f"/api/runs/{response.json()['id']}/compare")
    assert page.status_code == 200
    assert {url for _, _, url in urls_of(page.text)} == {artifact["url"]}
    assert "<img src=x" not in page.text


@pytest.mark.parametrize(("sweep", "reason"), [
    ({"cells": "ab", "outputs": [], "own": [], "uses": []}, "ui.sweep.cells is not a list of input objects"),
    ({"cells": [1], "outputs": [], "own": [[]], "uses": [[]]}, "ui.sweep.cells is not a list of input objects"),
    ({"cells": None}, "ui.sweep.cells is not a list of input objects"),
    ({"cells": [{}], "own": [[]], "uses": [[]]}, "ui.sweep.outputs is not a list of output names"),
    ({"cells": [{}], "outputs": 5, "own": [[]], "uses": [[]]}, "ui.sweep.outputs is not a list of output names"),
    ({"cells": [{}], "outputs": [], "uses": [[]]}, "ui.sweep.own is not a list of node ids per cell"),
    ({"cells": [{}], "outputs": [], "own": [], "uses": [[]]}, "ui.sweep.own is not a list of node ids per cell"),
    ({"cells": [{}], "outputs": [], "own": [[{"a": 1}]], "uses": [[]]}, "ui.sweep.own is not a list"),
    ({"cells": [{}], "outputs": [], "own": [[]], "uses": [[[1]]]}, "ui.sweep.uses is not a list"),
    ([1], "ui.sweep is not an object"),
])
def test_a_malformed_sweep_description_has_no_page_and_says_why(client: TestClient, sweep: Any,
                                                                reason: str) -> None:
    response = client.post("/api/runs", json={"graph": {**PICK, "ui": {"sweep": sweep}}})
    wait_finished(client, response.json()["id"])
    page = client.get(f"/api/runs/{response.json()['id']}/compare")
    assert page.status_code == 404, page.text
    assert page.json()["detail"].startswith(f"run '{response.json()['id']}' has no comparison page: {reason}")
