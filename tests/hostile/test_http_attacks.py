"""The HTTP surface attacked as a hostile client would, against a real ``nodeforge serve``: sweep bombs (a body of
2 KB that multiplies to a billion cells), script in media values on the comparison page, malformed ``ui.sweep``
descriptions, 300-character names on every route that takes one, racing DELETEs and OPTIONS. Each input is built
here; each answer must be a 4xx in the route's error shape, in time and within the memory budget."""

from __future__ import annotations

import io
import json
import threading
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.hostile.support import HostileServer, assert_contained
from tests.server.support import FINISHED, wait_for

LONG = "x" * 300
AXES = "abcdefghi"
"""Nine text inputs: nine axes of ten values each make a billion cells."""
WIDE = {"inputs": {name: {"type": "text", "default": ""} for name in AXES},
        "nodes": {"t": {"type": "text.template", "inputs": {
            "template": "".join(f"{{{name}}}" for name in AXES), **{name: {"input": name} for name in AXES}}}},
        "outputs": {"text": {"from": "t.text"}}}
PICK = {"inputs": {"pick": {"type": "json", "default": 0}},
        "nodes": {"t": {"type": "text.value", "inputs": {"value": "cell"}}}, "outputs": {"text": {"from": "t.text"}}}
SCRIPT_URLS = ["javascript:fetch('/api/runs').then(r=>r.text()).then(alert)", " JaVaScRiPt:alert(1)",
               "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "vbscript:msgbox(1)"]


class Urls(HTMLParser):
    """Every attribute of a page that a browser loads or follows."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value or "" for name, value in attrs
                       if name in ("href", "src", "srcset", "action", "formaction", "poster", "data", "xlink:href")]


@pytest.fixture(scope="module")
def wide(server: HostileServer) -> str:
    assert server.request("PUT", "/api/graphs/wide", json=WIDE).status_code in (200, 201)
    return "wide"


def finished(server: HostileServer, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        record: dict[str, Any] = server.request("GET", f"/api/runs/{run_id}", timeout=10).json()
        return record if record["status"] in FINISHED else None

    return wait_for(done, timeout=120, what=f"run {run_id} to finish")  # type: ignore[no-any-return]


def billion_axes() -> dict[str, list[str]]:
    return {name: [str(value) for value in range(10)] for name in AXES}


def test_a_2_kb_sweep_of_a_billion_cells(server: HostileServer) -> None:
    body = {"graph": WIDE, "sweep": {"axes": billion_axes()}}
    assert len(json.dumps(body)) < 2048
    response = server.attack("POST /api/runs: 2 KB sweep, 10^9 cells", "POST", "/api/runs", json=body)
    assert response.status_code == 422
    assert "the sweep has 1,000,000,000 cells" in response.json()["issues"][0]["message"]


def test_a_graph_sweep_node_of_a_billion_cells_on_put(server: HostileServer, wide: str) -> None:
    document = {"nodes": {"s": {"type": "graph.sweep", "inputs": {"graph": wide, "axes": billion_axes()}}}}
    response = server.attack("PUT graph.sweep: 10^9 cells", "PUT", "/api/graphs/bomb", json=document)
    assert response.status_code == 422
    issue = response.json()["issues"][0]
    assert (issue["node"], issue["input"]) == ("s", "axes") and "1,000,000,000 cells" in issue["message"]


def test_a_zip_and_rows_over_the_cap(server: HostileServer, wide: str) -> None:
    zipped = {name: [str(value) for value in range(5000)] for name in "ab"}
    response = server.attack("POST /api/runs: zip of 5,000 cells", "POST", "/api/runs",
                             json={"graph": wide, "sweep": {"axes": zipped, "mode": "zip"}})
    assert "sweep.axes.a: List should have at most 4096 items" in response.text
    response = server.attack("POST /api/runs: 4,097 rows", "POST", "/api/runs",
                             json={"graph": wide, "rows": [{"a": "1"}] * 4097})
    assert "rows: List should have at most 4096 items" in response.text


def test_a_sweep_within_the_cap_that_would_copy_too_many_nodes(server: HostileServer) -> None:
    """4,000 cells of a chain of eight nodes that all read the swept input: 32,000 copies, refused uncopied."""
    chain = {f"n{i}": {"type": "text.template", "inputs": {
        "template": "{x}", "x": {"input": "a"} if i == 0 else {"from": f"n{i - 1}.text"}}} for i in range(8)}
    body = {"graph": {"inputs": {"a": {"type": "text", "default": ""}}, "nodes": chain},
            "sweep": {"axes": {"a": [str(value) for value in range(4000)]}}}
    response = server.attack("POST /api/runs: 4,000 cells x 8 copied nodes", "POST", "/api/runs", json=body)
    assert "would copy 32,000 nodes" in response.text


def compare_page(server: HostileServer, name: str, run: dict[str, Any]) -> list[str]:
    """Submit a run, wait for it, and fetch its comparison page as one measured attack; the page's URLs."""
    submitted = server.request("POST", "/api/runs", json=run)
    assert submitted.status_code == 202, submitted.text
    run_id = submitted.json()["id"]
    finished(server, run_id)
    with server.measure(name) as row:
        page = server.request("GET", f"/api/runs/{run_id}/compare")
        row.answer = f"{page.status_code} {len(Urls(page.text).found)} links; CSP " \
                     f"{page.headers.get('content-security-policy', 'none')[:30]}"
    assert page.status_code == 200, page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert_contained(row)
    return Urls(page.text).found


@pytest.mark.parametrize("url", SCRIPT_URLS)
def test_script_urls_in_swept_values_never_become_links(server: HostileServer, url: str) -> None:
    value = {"url": url, "media_type": "image/png"}
    found = compare_page(server, f"compare: swept {url[:24]}", {
        "graph": PICK, "sweep": {"axes": {"pick": [value, {**value, "media_type": "audio/wav"}]}}})
    assert found == []


def test_a_forged_sweep_description_links_only_artifacts(server: HostileServer) -> None:
    hostile = [{"url": url, "media_type": kind} for url in SCRIPT_URLS for kind in ("image/png", "video/mp4",
                                                                                   "application/pdf")]
    artifact = {"url": "/api/artifacts/" + "0f" * 16, "media_type": "image/png"}
    cells = [{"pick": value} for value in [*hostile, artifact, [*hostile, artifact]]]
    forged = {**PICK, "ui": {"sweep": {"graph": "forged", "cells": cells, "outputs": ["text"],
                                       "own": [[] for _ in cells], "uses": [[] for _ in cells]}}}
    found = compare_page(server, "compare: forged ui.sweep, javascript: media", {"graph": forged})
    assert set(found) == {artifact["url"]}


MALFORMED = {
    "cells a string": {"cells": "ab", "outputs": [], "own": [], "uses": []},
    "cells of numbers": {"cells": [1, 2], "outputs": [], "own": [[], []], "uses": [[], []]},
    "no outputs": {"cells": [{"a": 1}], "own": [[]], "uses": [[]]},
    "own shorter than cells": {"cells": [{"a": 1}, {"a": 2}], "outputs": [], "own": [[]], "uses": [[], []]},
    "own of objects": {"cells": [{"a": 1}], "outputs": [], "own": [[{"x": 1}]], "uses": [[]]},
    "uses nested": {"cells": [{"a": 1}], "outputs": ["o"], "own": [[]], "uses": [[["n"]]]},
    "outputs an object": {"cells": [{"a": 1}], "outputs": {"o": 1}, "own": [[]], "uses": [[]]},
    "a list": [{"cells": []}],
}


@pytest.mark.parametrize("shape", MALFORMED)
def test_malformed_sweep_descriptions_on_the_compare_route(server: HostileServer, shape: str) -> None:
    submitted = server.request("POST", "/api/runs", json={"graph": {**PICK, "ui": {"sweep": MALFORMED[shape]}}})
    run_id = submitted.json()["id"]
    finished(server, run_id)
    response = server.attack(f"compare: ui.sweep {shape}", "GET", f"/api/runs/{run_id}/compare")
    assert response.status_code == 404 and "has no comparison page: ui.sweep" in response.json()["detail"]


def generate(model: str) -> dict[str, Any]:
    return {"nodes": {"g": {"type": "image.generate", "inputs": {
        "prompt": "x", "model": model, "steps": 1, "width": 64, "height": 64}}}}


TOO_LONG = "has a part longer than 255 bytes"
LONG_NAMES: dict[str, tuple[str, str, dict[str, Any], int, str]] = {
    "GET graph": ("GET", f"/api/graphs/{LONG}", {}, 400, "is not a valid graph name"),
    "PUT graph": ("PUT", f"/api/graphs/{LONG}", {"json": WIDE}, 400, "is not a valid graph name"),
    "DELETE graph": ("DELETE", f"/api/graphs/{LONG}", {}, 400, "is not a valid graph name"),
    "run a saved graph": ("POST", "/api/runs", {"json": {"graph": LONG}}, 400, "is not a valid graph name"),
    "model name": ("POST", "/api/runs", {"json": {"graph": generate(LONG)}}, 422, TOO_LONG),
    "model path": ("POST", "/api/runs", {"json": {"graph": generate(f"models/{LONG}.safetensors")}}, 422,
                   TOO_LONG),
    "model name on PUT": ("PUT", "/api/graphs/long-model", {"json": generate(LONG)}, 422, TOO_LONG),
    "image.load path": ("POST", "/api/runs", {"json": {"graph": {"nodes": {"l": {
        "type": "image.load", "inputs": {"path": f"{LONG}.png"}}}}}}, 422, TOO_LONG),
    "image.save folder": ("POST", "/api/runs", {"json": {"graph": {"nodes": {"l": {
        "type": "image.load", "inputs": {"path": "a.png"}}, "s": {"type": "image.save", "inputs": {
            "image": {"from": "l.image"}, "folder": LONG}}}}}}, 422, TOO_LONG),
    "media graph input": ("POST", "/api/runs", {"json": {"graph": {
        "inputs": {"pic": {"type": "image"}},
        "nodes": {"r": {"type": "image.resize", "inputs": {"image": {"input": "pic"}, "width": 8, "height": 8}}}},
        "inputs": {"pic": LONG}}}, 422, "is neither an artifact id"),
    "graph.call graph": ("POST", "/api/runs", {"json": {"graph": {"nodes": {"c": {
        "type": "graph.call", "inputs": {"graph": LONG}}}}}}, 422, "is not a valid graph name"),
    "GET run": ("GET", f"/api/runs/{LONG}", {}, 404, "no run"),
    "GET run compare": ("GET", f"/api/runs/{LONG}/compare", {}, 404, "no run"),
    "cancel run": ("POST", f"/api/runs/{LONG}/cancel", {}, 404, "no run"),
    "GET artifact": ("GET", f"/api/artifacts/{LONG}", {}, 404, "no artifact"),
    "upload, long file name": ("POST", "/api/uploads", {"files": {"file": (f"{LONG}.png", b"not a picture")}},
                               415, "unsupported content"),
}


@pytest.mark.parametrize("where", LONG_NAMES)
def test_300_character_names(server: HostileServer, where: str) -> None:
    """A name no file system holds is refused with the reason, on every route that takes a name or a path."""
    method, path, kwargs, status, reason = LONG_NAMES[where]
    response = server.attack(f"300 chars: {where}", method, path, **kwargs)
    body = response.json()
    messages = [body["detail"], *(issue["message"] for issue in body.get("issues") or [])]
    assert response.status_code == status and any(reason in message for message in messages), body


def test_a_real_upload_with_a_300_character_name_keeps_a_short_one(server: HostileServer) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "#336699").save(buffer, format="PNG")
    with server.measure("300 chars: upload of a real PNG") as row:
        response = server.request("POST", "/api/uploads", files={"file": (f"{LONG}.png", buffer.getvalue())})
        row.answer = f"{response.status_code} {response.json().get('filename', '')[:40]}"
    assert response.status_code == 201, response.text
    assert len(response.json()["filename"]) <= 90
    assert_contained(row)


def racing_deletes(server: HostileServer, name: str, count: int) -> list[int]:
    """``count`` DELETEs of one saved graph, released together; their statuses, sorted."""
    assert server.request("PUT", f"/api/graphs/{name}", json=WIDE).status_code in (200, 201)
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def delete() -> None:
        barrier.wait()
        statuses.append(server.request("DELETE", f"/api/graphs/{name}").status_code)

    threads = [threading.Thread(target=delete) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def test_concurrent_deletes_of_one_graph(server: HostileServer) -> None:
    """Eight DELETEs at once, five times: one wins (204), every other gets 404, none a 500."""
    with server.measure("8 concurrent DELETEs of one graph, x5") as row:
        rounds = [racing_deletes(server, "contested", 8) for _ in range(5)]
        row.answer = f"{rounds[0].count(204)}x204 {rounds[0].count(404)}x404 per round, " \
                     f"{sum(status >= 500 for statuses in rounds for status in statuses)}x5xx"
    assert rounds == [[204] + [404] * 7] * 5
    assert_contained(row)


def test_options_and_a_method_the_path_does_not_take(server: HostileServer) -> None:
    with server.measure("OPTIONS /api/graphs/{name}") as row:
        options = server.request("OPTIONS", "/api/graphs/hello")
        row.answer = f"{options.status_code} Allow: {options.headers.get('allow')}"
    assert (options.status_code, options.headers["allow"]) == (204, "GET, PUT, DELETE, OPTIONS")
    assert_contained(row)
    refused = server.attack("PATCH /api/graphs/{name}", "PATCH", "/api/graphs/hello")
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, PUT, DELETE, OPTIONS")
    refused = server.attack("PUT /v1/chat/completions", "PUT", "/v1/chat/completions")
    assert refused.headers["allow"] == "POST, OPTIONS"
    assert refused.json()["error"]["code"] == "method_not_allowed"
