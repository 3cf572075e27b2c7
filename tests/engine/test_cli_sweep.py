"""``nodeforge run G --sweep`` and ``--rows``: cells on the terminal, the comparison files, usage errors."""

import json
import tracemalloc
from pathlib import Path

import pytest

from nodeforge.engine.errors import UsageError
from tests.engine.test_cli import HELLO, cli


def test_sweep_writes_the_comparison_and_prints_the_cells(data_dir: Path, tmp_path: Path) -> None:
    done = cli("run", HELLO, "--sweep", "name=Ada,Grace,Linus", "--out", str(tmp_path / "out"), data_dir=data_dir,
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 cells" in done.stdout and "Hello, Grace! See you soon." in done.stdout
    table = json.loads((tmp_path / "out" / "compare.json").read_text(encoding="utf-8"))
    assert [row["inputs"] for row in table] == [{"name": "Ada"}, {"name": "Grace"}, {"name": "Linus"}]
    assert [row["outputs"]["message"] for row in table] == [f"Hello, {n}! See you soon." for n in
                                                             ("Ada", "Grace", "Linus")]
    assert (tmp_path / "out" / "compare.csv").read_text(encoding="utf-8").count("\n") == 4
    assert "Hello, Linus!" in (tmp_path / "out" / "compare.html").read_text(encoding="utf-8")
    again = cli("run", HELLO, "--sweep", "name=Ada,Grace,Linus", "--json", data_dir=data_dir, cwd=tmp_path)
    record = json.loads(again.stdout)
    assert [row["cached"] for row in record["cells"]] == [True, True, True]
    assert record["nodes"]["signoff"]["status"] == "cached"


def test_rows_from_csv_and_jsonl(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("name\nAda\nGrace\n", encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text('{"name": "Ada"}\n\n{"name": "Edsger"}\n', encoding="utf-8")
    for rows, names in (("rows.csv", ["Ada", "Grace"]), ("rows.jsonl", ["Ada", "Edsger"])):
        done = cli("run", HELLO, "--rows", rows, "--json", data_dir=data_dir, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        cells = json.loads(done.stdout)["cells"]
        assert [cell["outputs"]["message"] for cell in cells] == [f"Hello, {n}! See you soon." for n in names]


def test_sweep_usage_errors(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"colour": "red"}\n', encoding="utf-8")
    cases = {
        ("--sweep", "colour=red,blue"): "--sweep colour=red,blue: the graph has no input 'colour' (inputs: name)",
        ("--sweep", "name"): "expected NAME=VALUE,VALUE,... or NAME=FIRST..LAST",
        ("--zip",): "--zip needs --sweep",
        ("--rows", "bad.jsonl"): "bad.jsonl, row 1: the graph has no input 'colour' (inputs: name)",
        ("--rows", "missing.csv"): "--rows missing.csv: No such file or directory",
        ("--rows", "bad.jsonl", "--sweep", "name=a"): "--rows and --sweep do not go together",
    }
    for args, expected in cases.items():
        done = cli("run", HELLO, *args, data_dir=data_dir, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout)
        assert expected in done.stderr, (args, done.stderr)


def test_sweep_values_take_their_inputs_types() -> None:
    from nodeforge.engine.cli.run_sweep import cells_from_options
    from nodeforge.engine.document import parse_document

    document = parse_document({"inputs": {"seed": {"type": "int", "default": 0}, "cfg": {"type": "float",
                                                                                        "default": 1.0},
                                          "model": {"type": "text", "default": "tiny/sd"}},
                               "nodes": {"n": {"type": "text.value", "inputs": {"value": "x"}}}})
    cells = cells_from_options(document, ["seed=1..3", "cfg=[1.5, 7]"], False, None)
    assert cells == [{"seed": s, "cfg": c} for s in (1, 2, 3) for c in (1.5, 7.0)]
    assert cells_from_options(document, ["model=tiny/sd,tiny/sdxl", "seed=4..3"], True, None) == [
        {"model": "tiny/sd", "seed": 4}, {"model": "tiny/sdxl", "seed": 3}]
    assert cells_from_options(document, [], False, None) is None


SEEDED = {"name": "seeded", "inputs": {"seed": {"type": "int", "default": 0}, "name": {"type": "text", "default": ""}},
          "nodes": {"n": {"type": "text.template", "inputs": {"template": "{name} {seed}", "name": {"input": "name"},
                                                              "seed": {"input": "seed"}}}}}


def test_a_sweep_bomb_on_the_command_line_is_refused_before_it_is_expanded(data_dir: Path, tmp_path: Path) -> None:
    """A range, a product of options or a rows file over the cap is refused with exit 2 before any value list
    or cell is built (a billion-value range would otherwise take gigabytes before the cap was checked)."""
    graph = tmp_path / "seeded.json"
    graph.write_text(json.dumps(SEEDED), encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text('{"seed": 1}\n' * 5000, encoding="utf-8")
    cases = {
        ("--sweep", "seed=1..1000000000"): "--sweep seed=1..1000000000: 1,000,000,000 values; at most 4096 cells",
        ("--sweep", "seed=1..4000", "--sweep", "name=a,b"): "the sweep has 8,000 cells (axes of seed: 4000, name: 2 "
                                                             "values); at most 4096 run in one sweep",
        ("--rows", "rows.jsonl"): "rows.jsonl, line 4097: more than 4096 rows",
    }
    for args, expected in cases.items():
        done = cli("run", str(graph), *args, data_dir=data_dir, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert expected in done.stderr, (args, done.stderr)


def test_a_long_range_costs_nothing_before_it_is_refused() -> None:
    from nodeforge.engine.cli.run_sweep import cells_from_options
    from nodeforge.engine.document import parse_document

    document = parse_document(SEEDED)
    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match="200,000 values"):
            cells_from_options(document, ["seed=1..200000"], False, None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256_000, f"{peak:,} bytes held before the range was refused"
