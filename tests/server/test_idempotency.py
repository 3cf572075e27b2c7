"""Idempotency-Key on ``POST /api/runs``, through a real uvicorn server: a retry gets the first run, an empty key
is refused, and the same key with another body is a conflict."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, text_graph


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx2.Client]:
    with LiveServer(create_app(settings)) as live, httpx2.Client(base_url=live.url, timeout=30) as client:
        yield client


def test_an_empty_idempotency_key_is_refused(http: httpx2.Client) -> None:
    response = http.post("/api/runs", json={"graph": "hello"}, headers={"Idempotency-Key": ""})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert http.get("/api/runs").json()["total"] == 0


def test_the_same_key_with_another_body_is_a_conflict(http: httpx2.Client) -> None:
    key = {"Idempotency-Key": "order-7"}
    first = http.post("/api/runs", json={"graph": "hello"}, headers=key)
    assert first.status_code == 202 and first.json()["created"] is True
    same = http.post("/api/runs", json={"graph": "hello", "inputs": {}}, headers=key)
    assert same.status_code == 202 and same.json() == {**first.json(), "status": same.json()["status"],
                                                       "created": False}
    for other in ({"graph": text_graph()}, {"graph": "hello", "inputs": {"x": 1}}, {"graph": "no-such-graph"}):
        conflict = http.post("/api/runs", json=other, headers=key)
        assert conflict.status_code == 409, other
        assert "'order-7'" in conflict.json()["detail"]
    assert http.get("/api/runs").json()["total"] == 1
    assert http.post("/api/runs", json={"graph": text_graph()}, headers={"Idempotency-Key": "order-8"}
                     ).status_code == 202


def test_a_retry_is_answered_from_the_key_even_when_the_graph_is_gone(http: httpx2.Client) -> None:
    assert http.put("/api/graphs/greet", json=text_graph()).status_code == 201
    key = {"Idempotency-Key": "retry-1"}
    first = http.post("/api/runs", json={"graph": "greet"}, headers=key).json()
    assert http.delete("/api/graphs/greet").status_code == 204
    again = http.post("/api/runs", json={"graph": "greet"}, headers=key)
    assert again.status_code == 202 and again.json()["id"] == first["id"] and again.json()["created"] is False
