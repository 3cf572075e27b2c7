"""``nodeforge run G --sweep NAME=VALUES [--zip]`` and ``--rows FILE``: the graph over many inputs, without editing it.

The options become the cells of a sweep (``engine.sweep``); the combined graph runs like any other, so shared
work runs once and a batch cut short by Ctrl-C or a crash resumes from the cache on the next run. Afterwards the
output folder gets the comparison page, and the terminal a table with one row per cell.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nodeforge.engine.cli.compare_page import write_compare
from nodeforge.engine.document import GraphDocument
from nodeforge.engine.errors import EngineError, GraphInputError, UsageError
from nodeforge.engine.events import Event, NodeFailed, NodeFinished, NodesCached, NodeSkipped
from nodeforge.engine.inputs import parse_cli_value
from nodeforge.engine.ports import make_port
from nodeforge.engine.record import RunRecord
from nodeforge.engine.sweep import MAX_CELLS, Sweep, expand_sweep, node_states, sweep_cells, sweep_table


def sweep_of(document: GraphDocument, sweeps: Sequence[str], zipped: bool, rows: str | None) -> Sweep | None:
    """The sweep the options ask for, over ``document`` (None without ``--sweep`` or ``--rows``)."""
    cells = cells_from_options(document, sweeps, zipped, rows)
    if cells is None:
        return None
    try:
        return expand_sweep(document, cells)
    except EngineError as exc:
        raise UsageError(str(exc)) from None


def report(sweep: Sweep, record: RunRecord, out_dir: Path, *, as_json: bool) -> None:
    """After a sweep: the comparison page, CSV and JSON in the output folder, and the cells on the terminal (or
    the record with its ``cells`` as one JSON object)."""
    table = sweep_table(sweep.document.ui["sweep"], node_states(record), record.outputs)
    axes = list(dict.fromkeys(name for cell in sweep.cells for name in cell))
    written = write_compare(out_dir, table, title=sweep.document.name, axes=axes)
    if as_json:
        print(json.dumps({**record.to_json(), "cells": table}, ensure_ascii=False))
        return
    print_cells(table, axes)
    print(f"run {record.id}: {record.status}, {len(table)} cells; comparison: {written[0]}")
    if record.error:
        print(f"error: {record.error}", file=sys.stderr)


def cells_from_options(document: GraphDocument, sweeps: Sequence[str], zipped: bool,
                       rows: str | None) -> list[dict[str, Any]] | None:
    """The cells the options ask for (None without ``--sweep`` or ``--rows``); UsageError saying what is wrong."""
    if rows and sweeps:
        raise UsageError("--rows and --sweep do not go together: put the swept values in the rows")
    if zipped and not sweeps:
        raise UsageError("--zip needs --sweep")
    try:
        if rows:
            return sweep_cells([_typed(document, row, f"{rows}, row {i + 1}")
                                for i, row in enumerate(read_rows(Path(rows)))], "rows")
        if sweeps:
            axes = dict(_axis(document, option) for option in sweeps)
            return sweep_cells(axes, "zip" if zipped else "product")
    except EngineError as exc:
        raise UsageError(str(exc)) from None
    return None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of inputs from a ``.jsonl`` file (one JSON object per line) or a ``.csv`` file (a header of input
    names); empty lines are skipped. Read a line at a time and refused at the first row over ``MAX_CELLS``, so
    a huge file is never held whole."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise UsageError(f"--rows {path}: give a .jsonl or .csv file")
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8", newline="") as lines:
            for number, row in _csv_rows(lines) if suffix == ".csv" else _json_rows(path, lines):
                if len(rows) == MAX_CELLS:
                    raise UsageError(f"--rows {path}, line {number}: more than {MAX_CELLS} rows; at most "
                                     f"{MAX_CELLS} cells run in one sweep")
                rows.append(row)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--rows {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return rows


def _csv_rows(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(lines)
    for row in reader:
        if any(row.values()):
            yield reader.line_num, dict(row)


def _json_rows(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--rows {path}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise UsageError(f"--rows {path}, line {number}: each line is one JSON object of inputs")
        yield number, row


def _axis(document: GraphDocument, option: str) -> tuple[str, list[Any]]:
    """``--sweep name=a,b,c``, ``--sweep seed=1..4`` (an inclusive range of an int input) or ``name=[JSON list]``."""
    name, sep, text = option.partition("=")
    decl = document.inputs.get(name)
    if not sep or not name or not text:
        raise UsageError(f"--sweep {option}: expected NAME=VALUE,VALUE,... or NAME=FIRST..LAST")
    if decl is None:
        raise UsageError(f"--sweep {option}: the graph has no input '{name}' (inputs: "
                         f"{', '.join(document.inputs) or 'none'})")
    first, dots, last = text.partition("..")
    if dots and decl.type == "int":
        try:
            start, stop = int(first), int(last)
        except ValueError:
            raise UsageError(f"--sweep {option}: a range is FIRST..LAST of whole numbers") from None
        step = 1 if stop >= start else -1
        numbers = range(start, stop + step, step)
        if len(numbers) > MAX_CELLS:
            raise UsageError(f"--sweep {option}: {len(numbers):,} values; at most {MAX_CELLS} cells run in one "
                             "sweep")
        return name, list(numbers)
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--sweep {option}: not a JSON list ({exc.msg})") from None
    else:
        values = text.split(",")
    return name, [_value(document, name, value, f"--sweep {name}") for value in values]


def _typed(document: GraphDocument, row: dict[str, Any], where: str) -> dict[str, Any]:
    """A row's values in their inputs' types (CSV gives text; JSON lines may too)."""
    unknown = [name for name in row if name not in document.inputs]
    if unknown:
        raise UsageError(f"{where}: the graph has no input '{unknown[0]}' (inputs: "
                         f"{', '.join(document.inputs) or 'none'})")
    return {name: _value(document, name, value, where) for name, value in row.items()}


def _value(document: GraphDocument, name: str, value: Any, where: str) -> Any:
    port_type = document.inputs[name].type
    try:
        if isinstance(value, str):
            value = parse_cli_value(port_type, value.strip())
        return make_port(name, port_type).validate_literal(value)
    except (GraphInputError, ValueError) as exc:
        reason = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise UsageError(f"{where}: {name} = {value!r} is not {port_type}: {reason}") from None


class CellProgress:
    """A progress bar that counts finished cells: a cell is done when every node of its own has settled."""

    def __init__(self, sweep: Sweep) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.waiting = [set(nodes) for nodes in sweep.own_nodes]
        self.progress = Progress(TextColumn("cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 transient=True)
        self.task = self.progress.add_task("cells", total=len(self.waiting))
        self.done = sum(1 for nodes in self.waiting if not nodes)
        self.progress.update(self.task, completed=self.done)

    def __enter__(self) -> CellProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def listen(self, event: Event) -> None:
        match event.data:
            case NodesCached(nodes=settled):
                pass
            case NodeFinished(node=node) | NodeFailed(node=node) | NodeSkipped(node=node):
                settled = (node,)
            case _:
                return
        for node in settled:
            for nodes in self.waiting:
                if node in nodes:
                    nodes.discard(node)
                    if not nodes:
                        self.done += 1
        self.progress.update(self.task, completed=self.done)


def print_cells(table: list[dict[str, Any]], axes: Sequence[str]) -> None:
    """The cells as a table on the terminal: swept values, text and number outputs, seconds, devices, cache."""
    from rich.console import Console
    from rich.table import Table

    shown = Table(show_lines=False)
    outputs = list(table[0]["outputs"]) if table else []
    for column in ["#", *axes, *outputs, "seconds", "devices", "cached"]:
        shown.add_column(column, overflow="fold")
    for row in table:
        values = [str(row["index"]), *(_short(row["inputs"].get(axis, "")) for axis in axes),
                  *(_short(row["outputs"].get(name)) for name in outputs),
                  f"{row['seconds']:.2f}", ",".join(row["devices"]), "yes" if row["cached"] else ""]
        shown.add_row(*values)
    Console().print(shown)


def _short(value: Any) -> str:
    if isinstance(value, dict) and "path" in value:
        return str(Path(value["path"]).name)
    if isinstance(value, list):
        return " | ".join(_short(item) for item in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    text = "" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
