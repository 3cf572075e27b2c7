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
