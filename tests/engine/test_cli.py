"""The command line: exit codes, one-line usage errors, JSON output, validation, catalogue and schema."""

import json
import os
import subprocess
import sys
from pathlib import Path

from nodeforge.engine.cli import main
from nodeforge.engine.document import document_schema

ROOT = Path(__file__).resolve().parents[2]
HELLO = str(ROOT / "graphs" / "hello.json")


def cli(*args: str, data_dir: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NODEFORGE_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "nodeforge.engine.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_run_json_prints_one_record(data_dir: Path, tmp_path: Path) -> None:
    done = cli("run", HELLO, "--set", "name=Grace", "--json", "--devices", "cpu", data_dir=data_dir, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert set(record) >= {"id", "graph", "status", "inputs", "seeds", "outputs", "nodes", "error"}
    assert record["graph"] == "hello" and record["status"] == "succeeded" and record["devices"] == ["cpu"]
    assert record["inputs"] == {"name": "Grace"}
    node = record["nodes"]["greeting"]
    assert set(node) >= {"status", "device", "started_at", "finished_at", "seconds", "error"}
    assert node["device"] == "cpu" and node["started_at"] <= node["finished_at"]


def test_plain_run_prints_outputs(data_dir: Path, tmp_path: Path) -> None:
    done = cli("run", HELLO, data_dir=data_dir, cwd=tmp_path)
    assert done.returncode == 0
    assert "message: Hello, Ada! See you soon." in done.stdout


def test_bad_command_lines_get_one_line_and_exit_2(data_dir: Path, tmp_path: Path) -> None:
    cases = {
        ("run", HELLO, "--set", "nope=1"): "the graph has no input 'nope' (inputs: name)",
        ("run", HELLO, "--set", "name"): "expected NAME=VALUE",
        ("run", str(tmp_path / "missing.json")): "does not exist",
        ("run", HELLO, "--devices", "tpu:0"): "unknown device 'tpu:0'",
        ("frobnicate",): "invalid choice",
        ("run",): "the following arguments are required: graph",
    }
    for args, expected in cases.items():
        done = cli(*args, data_dir=data_dir, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def test_set_parses_by_graph_input_type(data_dir: Path, tmp_path: Path) -> None:
    graph = tmp_path / "typed.json"
    graph.write_text(json.dumps({
        "inputs": {"n": {"type": "int"}, "f": {"type": "float", "default": 0.5}},
        "nodes": {"i": {"type": "int.value", "inputs": {"value": {"input": "n"}}},
                  "x": {"type": "float.value", "inputs": {"value": {"input": "f"}}}}}))
    done = cli("run", str(graph), "--set", "n=41", "--set", "f=2.5", "--json", data_dir=data_dir, cwd=tmp_path)
    assert json.loads(done.stdout)["outputs"] == {"i.value": 41, "x.value": 2.5}
    bad = cli("run", str(graph), "--set", "n=lots", data_dir=data_dir, cwd=tmp_path)
    assert bad.returncode == 2 and "graph input 'n' is int" in bad.stderr


def test_validate_exit_codes_and_json(data_dir: Path, tmp_path: Path) -> None:
    assert cli("validate", HELLO, data_dir=data_dir).returncode == 0
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"nodes": {
        "a": {"type": "text.template", "inputs": {"template": "{x}"}},
        "b": {"type": "int.value", "inputs": {"value": "many"}}}}))
    plain = cli("validate", str(broken), data_dir=data_dir)
    assert plain.returncode == 1
    assert "a.x: placeholder {x} has no input named 'x' [invalid_input]" in plain.stderr
    assert "b.value: value: 'many' is not a valid int" in plain.stderr
    as_json = cli("validate", str(broken), "--json", data_dir=data_dir)
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["valid"] is False
    assert {(i["node"], i["input"], i["code"]) for i in report["issues"]} == {
        ("a", "x", "invalid_input"), ("b", "value", "invalid_literal")}


def test_run_of_invalid_graph_lists_issues_and_exits_1(data_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"nodes": {"a": {"type": "no.such"}}}))
    done = cli("run", str(broken), data_dir=data_dir, cwd=tmp_path)
    assert done.returncode == 1 and "unknown node type 'no.such'" in done.stderr


def test_failed_run_exits_1_with_partial_record(data_dir: Path, tmp_path: Path) -> None:
    graph = tmp_path / "fails.json"
    graph.write_text(json.dumps({"nodes": {
        "src": {"type": "text.value", "inputs": {"value": "{missing}"}},
        "t": {"type": "text.template", "inputs": {"template": {"from": "src.text"}}},
        "ok": {"type": "int.value", "inputs": {"value": 3}}}}))
    done = cli("run", str(graph), "--json", data_dir=data_dir, cwd=tmp_path)
    record = json.loads(done.stdout)
    assert done.returncode == 1 and record["status"] == "failed"
    assert record["outputs"] == {"ok.value": 3}
    assert "placeholder {missing}" in record["error"]


def test_nodes_json_lists_schemas(data_dir: Path) -> None:
    done = cli("nodes", "--json", data_dir=data_dir)
    catalogue = json.loads(done.stdout)
    types = {entry["type"] for entry in catalogue["nodes"]}
    assert {"text.template", "graph.call", "int.value"} <= types
    assert catalogue["problems"] == []


def test_plugins_option_reports_broken_plugin_and_keeps_going(data_dir: Path) -> None:
    done = cli("nodes", "--plugins", str(ROOT / "tests" / "support" / "plugins_broken"), data_dir=data_dir)
    assert done.returncode == 0
    assert "plugin.shout" in done.stdout
    assert "plugin exploding not loaded" in done.stderr


def test_schema_file_is_current(capsys) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == document_schema()
    assert json.loads((ROOT / "graphs" / "graph.schema.json").read_text()) == printed, \
        "graphs/graph.schema.json is stale: regenerate it with `nodeforge schema > graphs/graph.schema.json`"


def test_devices_command_shows_budgets(data_dir: Path) -> None:
    done = cli("devices", "--devices", "cpu:0,cpu:1", "--vram-budget", "cpu:0=1G,cpu:1=512M", "--json",
               data_dir=data_dir)
    ledger = json.loads(done.stdout)["devices"]
    assert ledger["cpu:0"]["budget"] == 1 << 30 and ledger["cpu:1"]["budget"] == 512 << 20
    assert ledger["cpu:0"]["models"] == []
    bad = cli("devices", "--devices", "cpu:0", "--vram-budget", "cpu:9=1G", data_dir=data_dir)
    assert bad.returncode == 2 and "not in --devices" in bad.stderr


def test_deeply_nested_graphs_and_set_values_are_refused(data_dir: Path, tmp_path: Path) -> None:
    deep: object = "x"
    for _ in range(500):
        deep = [deep]
    takes_json = {"inputs": {"extra": {"type": "json", "default": []}},
                  "nodes": {"hi": {"type": "text.value", "inputs": {"value": "hi"}}}}
    graph = tmp_path / "takes.json"
    graph.write_text(json.dumps(takes_json))
    in_file = tmp_path / "deep.json"
    in_file.write_text(json.dumps({**takes_json, "ui": {"notes": deep}}))
    refused = cli("run", str(in_file), data_dir=data_dir, cwd=tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert "ui: nested deeper than 64 levels [too_deep]" in refused.stderr and "Traceback" not in refused.stderr
    undecodable = tmp_path / "undecodable.json"
    undecodable.write_text('{"nodes": {}, "ui": ' + "[" * 20000 + "]" * 20000 + "}")
    set_values = (f"extra={json.dumps(deep)}", "extra=" + "[" * 20000 + "]" * 20000)
    usage = [cli("run", str(undecodable), data_dir=data_dir, cwd=tmp_path)]
    usage += [cli("run", str(graph), "--set", value, data_dir=data_dir, cwd=tmp_path) for value in set_values]
    expected = [f"{undecodable}: nested deeper than 64 levels"] + [
        "--set extra=...: graph input 'extra' is nested deeper than 64 levels"] * 2
    for done, message in zip(usage, expected, strict=True):
        assert done.returncode == 2 and done.stderr.strip() == f"nodeforge: {message}", done.stderr


def test_validate_loads_neither_torch_nor_the_plugin_commands_and_help_lists_them(data_dir: Path) -> None:
    probe = ("import json, sys\nfrom nodeforge.engine.cli import main\n"
             f"code = main(['validate', {HELLO!r}])\n"
             "heavy = [m for m in sys.modules if m == 'torch' or m.startswith('nodeforge.server')]\n"
             "print(json.dumps([code, sorted(heavy)]))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "NODEFORGE_DATA_DIR": str(data_dir)})
    assert json.loads(done.stdout.splitlines()[-1]) == [0, []], done.stderr
    shown = cli("--help", data_dir=data_dir)
    assert shown.returncode == 0 and all(name in shown.stdout for name in ("serve", "watch", "models"))
