"""Watching: ``nodeforge watch`` re-runs a graph when its file changes (recomputing only what changed), and the
server reloads its graph library and plugin folders, reporting a broken plugin without going down."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx2

from nodeforge.server.app import create_app
from nodeforge.server.settings import Settings
from tests.server.support import LiveServer, parse_sse, text_graph, wait_for

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = '''
from nodeforge.engine.node import Node, NodeInputs, NodeOutputs


class Echo(Node):
    """Echo a text."""

    type_id = "hot.echo"
    version = "VERSION"

    class Inputs(NodeInputs):
        text: str

    class Outputs(NodeOutputs):
        text: str

    def run(self, inputs, ctx):
        return self.Outputs(text=inputs.text)
'''


def chain(first: str) -> dict:
    return {"nodes": {"a": {"type": "text.value", "inputs": {"value": first}},
                      "b": {"type": "text.value", "inputs": {"value": "fixed"}},
                      "c": {"type": "text.join", "inputs": {"texts": [{"from": "a.text"}, {"from": "b.text"}]}}},
            "outputs": {"joined": {"from": "c.text"}}}


def test_watch_reruns_on_each_save_and_recomputes_only_what_changed(tmp_path: Path) -> None:
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(chain("one")))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "nodeforge.engine.cli", "watch", str(graph), "--json",
                                "--data-dir", str(tmp_path / "data")], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    records: list[dict] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            records.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: records, timeout=60, what="the first run")
        assert records[0]["outputs"] == {"joined": "one fixed"}
        assert {node["status"] for node in records[0]["nodes"].values()} == {"succeeded"}
        graph.write_text(json.dumps(chain("two")))
        wait_for(lambda: len(records) >= 2, timeout=60, what="a run after the change")
        second = records[1]
        assert second["outputs"] == {"joined": "two fixed"}
        assert {node_id: node["status"] for node_id, node in second["nodes"].items()} == {
            "a": "succeeded", "b": "cached", "c": "succeeded"}
        graph.write_text("{broken")
        tmp = tmp_path / "g.json.tmp"
        tmp.write_text(json.dumps(chain("three")))
        os.replace(tmp, graph)
        wait_for(lambda: len(records) >= 3, timeout=60, what="a run after an atomic save")
        assert records[-1]["outputs"] == {"joined": "three fixed"}
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert process.stderr is not None and "watching" in process.stderr.read()


def test_the_server_reloads_plugins_and_announces_library_changes(settings: Settings, tmp_path: Path) -> None:
    plugins = tmp_path / "hot"
    plugins.mkdir()
    watching = dataclasses.replace(settings, plugins=(*settings.plugins, plugins), watch=True)
    with LiveServer(create_app(watching)) as live, httpx2.Client(base_url=live.url, timeout=30) as http:
        announced: list[dict] = []

        def listen() -> None:
            with http.stream("GET", "/api/events") as response:
                buffer = ""
                for text in response.iter_text():
                    buffer += text
                    announced[:] = [event["data"] for event in parse_sse(buffer)]
                    if any(event["kind"] == "library.changed" for event in announced):
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        wait_for(lambda: http.get("/api/health").json()["listeners"] == 1, what="the listener")

        def types() -> set[str]:
            return {entry["type"] for entry in http.get("/api/nodes").json()["nodes"]}

        (plugins / "echo.py").write_text(PLUGIN.replace("VERSION", "1.0.0"))
        wait_for(lambda: "hot.echo" in types(), what="the new plugin node")
        (plugins / "echo.py").write_text(PLUGIN.replace("VERSION", "not-semver"))
        wait_for(lambda: http.get("/api/health").json()["problems"], what="the broken plugin to be reported")
        health = http.get("/api/health").json()
        assert health["status"] == "ok" and "not semver" in health["problems"][0]["reason"]
        assert "hot.echo" not in types() and "text.join" in types()
        (settings.data_dir / "graphs" / "dropped.json").write_text(json.dumps(text_graph("dropped")))
        listener.join(timeout=30)
        changed = [event for event in announced if event["kind"] == "library.changed"]
        assert changed and changed[0]["graphs"] == ["dropped"]
        assert [event["kind"] for event in announced].count("plugins.reloaded") >= 2
        assert "dropped" in {entry["name"] for entry in http.get("/api/graphs").json()["graphs"]}
