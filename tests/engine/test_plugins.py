"""Plugin loading: entry points (the built-in nodes), plugin folders, and broken plugins reported by name."""

from pathlib import Path

from nodeforge.engine.registry import Registry

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def test_builtin_nodes_arrive_through_the_entry_point() -> None:
    registry = Registry.discover()
    assert {"text.template", "text.join", "text.value", "int.value", "float.value", "graph.call"} <= {
        spec.type for spec in registry}
    assert registry.problems == []


def test_plugin_folder_adds_nodes() -> None:
    registry = Registry.discover([SUPPORT / "plugins_ok"])
    assert "plugin.shout" in registry
    assert registry.get("plugin.shout").source == "shout"


def test_broken_plugins_are_reported_and_others_still_load() -> None:
    registry = Registry.discover([SUPPORT / "plugins_broken"])
    assert "plugin.shout" in registry and "text.template" in registry
    assert "plugin.noversion" not in registry
    reasons = {problem.plugin: problem.reason for problem in registry.problems}
    assert set(reasons) == {"exploding", "misdeclared"}
    assert "ModuleNotFoundError: No module named 'module_that_is_not_installed'" in reasons["exploding"]
    assert "version None is not semver" in reasons["misdeclared"]


def test_missing_plugin_folder_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    registry = Registry.discover([tmp_path / "nowhere"])
    assert [p.reason for p in registry.problems] == ["plugins folder does not exist"]


def test_catalogue_has_json_schema_and_port_types() -> None:
    entry = {e["type"]: e for e in Registry.discover().catalogue()}["text.join"]
    assert entry["version"] == "1.0.0" and entry["category"] == "text"
    assert entry["inputs"]["properties"]["texts"]["x-nodeforge-type"] == "list[text]"
    assert entry["inputs"]["properties"]["separator"]["default"] == " "
    assert entry["inputs"]["required"] == ["texts"]
    assert entry["outputs"]["properties"]["text"]["x-nodeforge-type"] == "text"


def test_a_node_still_declaring_type_is_reported_as_renamed(tmp_path: Path) -> None:
    (tmp_path / "oldstyle.py").write_text(
        "from nodeforge.engine.node import Node, NodeInputs, NodeOutputs\n\n\n"
        "class Old(Node):\n"
        "    \"\"\"Declared before the rename.\"\"\"\n\n"
        "    type = \"plugin.old\"\n"
        "    version = \"1.0.0\"\n\n"
        "    class Inputs(NodeInputs):\n        x: int = 0\n\n"
        "    class Outputs(NodeOutputs):\n        x: int\n\n"
        "    def run(self, inputs, ctx):\n        return self.Outputs(x=inputs.x)\n")
    registry = Registry.discover([tmp_path])
    assert "plugin.old" not in registry
    [problem] = registry.problems
    assert problem.plugin == "oldstyle"
    assert "the class attribute 'type' is now 'type_id' (type_id = 'plugin.old')" in problem.reason


def test_nodeforge_serve_logs_each_broken_plugin_at_start_and_on_reload(tmp_path: Path) -> None:
    """The operator reads the server's log, not ``/api/health``: a plugin that cannot be loaded is named there,
    with its file and the error, when the server starts and when a plugin folder changes."""
    import os
    import shutil
    import subprocess
    import sys

    import httpx2

    from tests.server.support import ROOT, free_port, wait_for

    plugins = tmp_path / "plugins"
    shutil.copytree(SUPPORT / "plugins_broken", plugins)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "nodeforge.engine.cli", "serve", "--port", str(port), "--data-dir",
             str(tmp_path / "data"), "--plugins", str(plugins), "--devices", "cpu", "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            def up() -> bool:
                assert process.poll() is None, log.read_text()[-2000:]
                try:
                    return httpx2.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
                except httpx2.TransportError:
                    return False

            wait_for(up, timeout=90, what="the server to answer")
            started = log.read_text()
            assert f"plugin exploding not loaded: {plugins / 'exploding.py'}: ModuleNotFoundError: No module named " \
                   "'module_that_is_not_installed'" in started
            assert "plugin misdeclared not loaded: " in started and "version None is not semver" in started
            (plugins / "later.py").write_text("raise RuntimeError('later is broken')\n")
            wait_for(lambda: "plugin later not loaded: " in log.read_text(), timeout=60, what="the reload's log")
            assert f"{plugins / 'later.py'}: RuntimeError: later is broken" in log.read_text()
        finally:
            process.terminate()
            process.wait(timeout=30)
