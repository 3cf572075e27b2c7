"""Security: the bearer token on every route, loopback Host names only, no cross-origin calls, body limits,
refusing to expose the API without a token, one server per data dir."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest
from starlette.testclient import TestClient

from nodeforge.engine.cli import main
from nodeforge.server.app import create_app
from nodeforge.server.cli import settings_from_args
from nodeforge.server.runtime import DataDirBusy, Runtime
from nodeforge.server.settings import Settings

TOKEN = "s3cret-token"


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_needs_the_token(settings: Settings) -> None:
    app = create_app(dataclasses.replace(settings, token=TOKEN))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        schema = client.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        routes = [(method.upper(), concrete(path)) for path, item in schema["paths"].items() for method in item]
        assert ("GET", "/api/runs/x/events") in routes and ("POST", "/v1/chat/completions") in routes
        assert len(routes) >= 17
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                            {"Authorization": f"Basic {TOKEN}"}):
                response = client.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, headers)
                assert response.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/health", headers=good).status_code == 200
        run_id = client.post("/api/runs", json={"graph": "hello"}, headers=good).json()["id"]
        assert client.get(f"/api/runs/{run_id}/events", headers=good).status_code == 200
        assert client.get("/docs").status_code == 200
        assert client.get("/", follow_redirects=False).status_code in (200, 307)


def test_only_loopback_host_names_are_answered(client: TestClient) -> None:
    assert client.get("/api/health", headers={"Host": "localhost:8188"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "[::1]:8188"}).status_code == 200
    rebound = client.get("/api/health", headers={"Host": "attacker.example:8188"})
    assert rebound.status_code == 403 and "loopback" in rebound.json()["detail"]


def test_cross_origin_requests_are_refused(settings: Settings) -> None:
    with TestClient(create_app(dataclasses.replace(settings, allowed_origins=("http://localhost:5173",))),
                    base_url="http://127.0.0.1:8188") as client:
        same = client.post("/api/runs", json={"graph": "hello"}, headers={"Origin": "http://127.0.0.1:8188"})
        assert same.status_code == 202
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "cross-site"}):
            refused = client.post("/api/runs", json={"graph": "hello"}, headers=headers)
            assert refused.status_code == 403, headers
        allowed = client.get("/api/health", headers={"Origin": "http://localhost:5173"})
        assert allowed.status_code == 200


def test_request_body_limit(settings: Settings) -> None:
    with TestClient(create_app(dataclasses.replace(settings, max_body_bytes=1000)),
                    base_url="http://127.0.0.1") as client:
        big = {"graph": {"nodes": {"a": {"type": "text.value", "inputs": {"value": "x" * 2000}}}}}
        response = client.post("/api/runs", json=big)
        assert response.status_code == 413 and "limit of 1000 bytes" in response.json()["detail"]

        def chunks():
            yield b'{"graph": {"nodes": {"a": {"type": "text.value", "inputs": {"value": "'
            for _ in range(20):
                yield b"x" * 100
            yield b'"}}}}}'

        streamed = client.post("/api/runs", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert client.get("/api/runs").json()["total"] == 0


def args(**given: object) -> argparse.Namespace:
    base = dict(host="127.0.0.1", port=8188, token=None, insecure=False, devices="auto", concurrency=1, workers=8,
                max_upload_mb=256, allow_origin=[], allow_dir=[], no_watch=False, data_dir=None, plugins=[],
                backend="local", address=None, allow_write_dir=[], max_image_pixels=64_000_000,
                max_video_frames=2_000, max_audio_seconds=1_800.0, preview_method="latent", vram_budget=None,
                memory_mode=None)
    return argparse.Namespace(**{**base, **given})


def test_a_public_bind_needs_a_token(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("NODEFORGE_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)]) == 2
    assert "refusing to listen on 0.0.0.0 without a token" in capsys.readouterr().err
    assert settings_from_args(args(host="0.0.0.0", token="t", data_dir=tmp_path)).token == "t"
    assert settings_from_args(args(host="0.0.0.0", insecure=True, data_dir=tmp_path)).token is None
    monkeypatch.setenv("NODEFORGE_TOKEN", "from-env")
    assert settings_from_args(args(host="::", data_dir=tmp_path)).token == "from-env"
    assert settings_from_args(args(host="localhost", data_dir=tmp_path)).token == "from-env"


def test_one_server_per_data_dir(settings: Settings, tmp_path) -> None:
    first = Runtime(settings)
    try:
        with pytest.raises(DataDirBusy):
            Runtime(settings)
        assert main(["serve", "--data-dir", str(settings.data_dir), "--port", "1"]) == 1
    finally:
        first.close()
    Runtime(settings).close()


def test_bad_device_lists_are_usage_errors(tmp_path, capsys) -> None:
    assert main(["serve", "--devices", "gpu7", "--data-dir", str(tmp_path)]) == 2
    assert "unknown device 'gpu7'" in capsys.readouterr().err


LEAKY_PLUGIN = '''
from pathlib import Path

from nodeforge.engine.node import Node, NodeInputs, NodeOutputs


def read_table(folder):
    import json

    from PIL import Image

    try:
        json.loads("{")
    except ValueError:
        try:
            Image.open(folder / "models" / "junk.safetensors")
        except OSError as exc:
            raise ValueError(f"cannot parse {Path(__file__).parent / 'table.csv'} (data in {folder})") from exc


class Leaky(Node):
    """Fails with the paths of its own folder and of the data dir in its reason, and a traceback through the
    standard library and site-packages."""

    type_id = "leak.read"
    version = "1.0.0"

    class Inputs(NodeInputs):
        x: int = 0

    class Outputs(NodeOutputs):
        x: int

    def run(self, inputs, ctx):
        read_table(ctx.data_dir)
        return self.Outputs(x=inputs.x)
'''


def server_paths(*folders) -> list[str]:
    """The spellings of the server's own folders and Python's that no client may read."""
    import os
    import site
    import sys
    from pathlib import Path

    from tests.server.support import ROOT

    paths = {*folders, ROOT, Path(sys.prefix), Path(sys.base_prefix), *map(Path, site.getsitepackages()), Path.home()}
    return sorted({text for path in paths for text in (str(path), os.path.realpath(path)) if len(text) > 1})


def test_no_server_path_in_what_clients_read_of_failing_runs(settings: Settings, tmp_path) -> None:
    """Failing runs (a model file in the data dir that is garbage, an alias to it, a Hub id offline, a plugin node
    that raises) leave no path of the server's folders or Python's in their records, tracebacks, events (stored
    and streamed), the run list, the model list, health or the node catalogue."""
    import sqlite3

    from tests.server.support import wait_finished

    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "leaky.py").write_text(LEAKY_PLUGIN)
    (plugins / "broken.py").write_text("import module_that_is_not_installed\n")
    data_dir = settings.data_dir
    (data_dir / "models").mkdir(parents=True)
    (data_dir / "models" / "junk.safetensors").write_bytes(b"not a checkpoint" * 64)
    (data_dir / "models.toml").write_text(f'[aliases]\nmine = "{data_dir / "models" / "junk.safetensors"}"\n')
    settings = dataclasses.replace(settings, plugins=(*settings.plugins, plugins))
    failing = [{"draw": {"type": "image.generate", "inputs": {"prompt": "x", "model": model, "steps": 1,
                                                             "width": 64, "height": 64}}}
               for model in ("junk.safetensors", "mine", "someorg/somemodel")]
    failing.append({"read": {"type": "leak.read", "inputs": {}}})
    forbidden = server_paths(data_dir, plugins)
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8188") as client:
        ids = [client.post("/api/runs", json={"graph": {"nodes": nodes}}).json()["id"] for nodes in failing]
        records = [wait_finished(client, run_id) for run_id in ids]
        assert [record["status"] for record in records] == ["failed"] * 4
        failed_nodes = ("draw", "draw", "draw", "read")
        assert all(record["nodes"][node]["traceback"] for record, node in zip(records, failed_nodes, strict=True))
        assert "<data dir>/models/junk.safetensors" in records[0]["error"]
        assert "cannot parse <plugins>/table.csv (data in <data dir>)" in records[3]["error"]
        traceback = records[3]["nodes"]["read"]["traceback"]
        assert all(place in traceback for place in ('"<python>/', '"<site-packages>/PIL/', '"<plugins>/leaky.py"'))
        read = [client.get(path).text for path in ("/api/runs", "/api/models", "/api/health", "/api/nodes")]
        read += [client.get(f"/api/runs/{run_id}").text for run_id in ids]
        read += [client.get(f"/api/runs/{run_id}/events").text for run_id in ids]
        assert "<data dir>/models/junk.safetensors" in read[1] and "<plugins>/broken.py" in read[2]
    db = sqlite3.connect(data_dir / "runs.sqlite")
    stored = [value for query in ("SELECT error FROM runs", "SELECT error, traceback FROM nodes",
                                  "SELECT data FROM events") for row in db.execute(query) for value in row if value]
    db.close()
    assert any("Traceback" in value for value in stored)
    for text in [*read, *stored]:
        leaked = [path for path in forbidden if path in text]
        assert not leaked, f"{leaked} in {text[:2000]}"
