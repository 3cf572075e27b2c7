"""Sweeps and batches over HTTP: POST /api/runs with "sweep" or "rows", and the comparison page of the run."""

from __future__ import annotations

from html.parser import HTMLParser

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
    both = client.post("/api/runs", json={"graph": "hello", "sweep": {"axes": {"name": ["a"]}}, "rows": [{}]})
    assert both.status_code == 422 and "not both" in both.text
    plain = client.post("/api/runs", json={"graph": "hello"}).json()
    wait_finished(client, plain["id"])
    page = client.get(f"/api/runs/{plain['id']}/compare")
    assert page.status_code == 404 and "is not a sweep" in page.text
