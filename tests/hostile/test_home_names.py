"""Model names in ``~user/...`` form for a user the server's machine does not have: ``Path.expanduser`` raises
(``Could not determine home directory``) where ``os.path.expanduser`` leaves the name as it is, so each route
that resolves a model name must answer a 4xx naming it, not a 500. schemathesis found the speech route's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hostile.support import HostileServer

NAME = "~nosuchuser-nodeforge/model.safetensors"
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("speech", "/v1/audio/speech", {"model": NAME, "input": "hello", "voice": "bob"}),
    ("images", "/v1/images/generations", {"model": NAME, "prompt": "a fox", "size": "64x64"}),
    ("chat", "/v1/chat/completions", {"model": NAME, "messages": [{"role": "user", "content": "hi"}]}),
    ("run", "/api/runs", {"graph": {"name": "home", "nodes": {"g": {"type": "image.generate", "inputs": {
        "prompt": "a fox", "model": NAME, "width": 64, "height": 64, "steps": 1}}}}}),
]


@pytest.mark.parametrize(("label", "path", "body"), ROUTES, ids=[route[0] for route in ROUTES])
def test_a_model_in_an_unknown_users_home_is_a_client_error(server: HostileServer, label: str, path: str,
                                                            body: dict[str, Any]) -> None:
    response = server.attack(f"model {NAME} ({label})", "POST", path, json=body)
    message = response.json().get("detail") or response.json()["error"]["message"]
    issues = response.json().get("issues") or []
    assert NAME in message or any(NAME in issue["message"] for issue in issues), response.text
